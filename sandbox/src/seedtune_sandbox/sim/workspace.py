"""A demo workspace's simulator, recorded and brought back (``seedtune sim --workspace``).

``seedtune demo`` stops its simulator when it ends; what it recorded here lets one command
serve the workspace again on the same ports with the same keys, so its
conf/local/default.yaml, ``crawl.allow_networks`` and cached page links stay true.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from seedtune.core.errors import ConfigError
from seedtune.core.records import atomic_write_text, read_yaml_mapping

#: Where a workspace keeps its simulator's layout (git- and dvc-ignored, as conf/local/ is):
#: the API port and each page origin's port, so `seedtune sim --workspace` brings it back
#: where conf/local/default.yaml's URLs, crawl.allow_networks and the cached links point.
SIM_STATE = Path("conf/local/sim.yaml")


def save_sim_state(work: Path, sim: Any) -> None:
    """Record ``sim``'s ports and judge in :data:`SIM_STATE` and its keys in the workspace's
    git-ignored ``.env`` (owner-only), where every stage and ``seedtune ask`` find them."""
    cfg = sim.config
    state = {
        "host": cfg.host,
        "port": sim.port,
        "judge": cfg.judge,
        "page_ports": {
            name: int(urlsplit(url).port or 0) for name, url in sim.page_origins.items()
        },
    }
    atomic_write_text(work / SIM_STATE, yaml.safe_dump(state, sort_keys=False))
    keys = {
        "OPENAI_API_KEY": cfg.openai_api_key,
        "NAVER_CLIENT_ID": cfg.naver_client_id,
        "NAVER_CLIENT_SECRET": cfg.naver_client_secret,
    }
    text = (
        "# the simulator's keys (seedtune demo): `seedtune sim --workspace .` accepts these\n"
        + "".join(f"{k}={v}\n" for k, v in keys.items() if v)
    )
    fd = os.open(work / ".env", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # keys: owner only
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def workspace_sim(workspace: Path | str) -> dict[str, Any]:
    """:class:`SimConfig` fields that serve ``workspace`` again: its recorded ports and
    judge (:data:`SIM_STATE`), the keys of its ``.env``."""
    from seedtune.core.credentials import _dotenv

    work = Path(workspace)
    state_file = work / SIM_STATE
    if not state_file.is_file():
        raise ConfigError(
            f"{state_file}: no simulator recorded here; --workspace takes a "
            "directory `seedtune demo` made (default .cache/demo)"
        )
    state = read_yaml_mapping(state_file)
    keys = _dotenv(work / ".env")
    try:
        return {
            "host": str(state["host"]),
            "port": int(state["port"]),
            "judge": str(state.get("judge", "reference")),
            "page_ports": {str(k): int(v) for k, v in (state.get("page_ports") or {}).items()},
            "openai_api_key": keys.get("OPENAI_API_KEY"),
            "naver_client_id": keys.get("NAVER_CLIENT_ID"),
            "naver_client_secret": keys.get("NAVER_CLIENT_SECRET"),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{state_file}: not a simulator record ({exc}); rerun `seedtune demo`"
        ) from None
