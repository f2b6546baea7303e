"""System messages for chat templates that refuse them (``llm.system_role``).

Gemma's chat template (1 and 2) raises "System role not supported"; the server answers HTTP
500 (or 400, 422), sometimes with the message, sometimes with an empty body. Such a model
takes the same instructions at the start of the first user turn, which is exactly what
Gemma 3's own template does with a system message: ``"{system}\\n\\n{user}"``.

- ``auto`` (default): fold up front for the Gemma family (by ``llm.model``); otherwise send
  the system message, and when the server refuses it, fold and send that request again
  at once; every later request of the run is folded (logged once);
- ``fold``: always fold; ``keep``: never (a refusal is then the server's error).

The cache key stays that of the logical request (system and user apart): folding is how
this server's template takes the same conversation, as ``json_object_schema`` is how it
takes the same schema, so switching servers or this setting repays nothing.
"""

from __future__ import annotations

import logging
import re
from typing import Any

log = logging.getLogger(__name__)

#: What chat templates and servers say when a conversation may not have a system turn.
_REFUSALS = re.compile(
    r"system role (is )?not supported|roles must alternate|"
    r"only (the )?user and assistant roles|unsupported role:? .?system",
    re.IGNORECASE,
)
#: Model families whose templates refuse a system turn (folded up front in ``auto``).
_FOLD_FAMILIES = re.compile(r"gemma", re.IGNORECASE)


def refuses_system_role(status: int, body: str) -> bool:
    """Whether a non-2xx answer says the model's chat template refuses a system message."""
    return status in (400, 422, 500) and bool(_REFUSALS.search(body or ""))


def folds_up_front(model: str) -> bool:
    """Whether ``auto`` folds for ``model`` before any refusal (the Gemma family)."""
    return bool(_FOLD_FAMILIES.search(model))


def has_system(messages: list[dict[str, Any]]) -> bool:
    """Whether ``messages`` has a system turn to fold."""
    return any(m.get("role") == "system" for m in messages)


def fold(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The system turns put at the start of the first user turn (``"{system}\\n\\n{user}"``);
    without a user turn the system text becomes one."""
    system = "\n\n".join(str(m["content"]) for m in messages if m.get("role") == "system")
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if not system:
        return rest
    for m in rest:
        if m.get("role") == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


class SystemRole:
    """One client's policy: whether to fold now, and whether a refusal means fold."""

    def __init__(self, mode: str, model: str, desc: str) -> None:
        self.mode, self.desc = mode, desc
        self.folding = mode == "fold" or (mode == "auto" and folds_up_front(model))

    def refused(
        self, status: int, text: str, messages: list[dict[str, Any]], base_url: str
    ) -> bool:
        """Whether this answer refused the system turn of ``messages`` and the request
        should go again folded (``auto`` only; from now on every request is folded)."""
        if self.mode != "auto" or not has_system(messages) or not refuses_system_role(status, text):
            return False
        if not self.folding:
            log.warning(
                "%s: %s refuses system messages (HTTP %d, the model's chat "
                "template); folding them into the user turn from now on (set "
                "llm.system_role: fold to do so up front)",
                self.desc,
                base_url,
                status,
            )
            self.folding = True
        return True
