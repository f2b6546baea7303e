"""The defaults in code (src/seedtune/core/config.py) are the defaults in conf/: a run whose
params.yaml lacks a key (an older workspace, a test, a library caller) behaves as conf/ says,
and nobody has to ask which of two values is meant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from pydantic import BaseModel
from support import ROOT, composed_params

from seedtune.core.config import Params

#: Sections kept out: ``prices`` is a table of data (conf/prices/), its code default is "none".
NOT_SETTINGS = {"prices"}


def conf_params() -> Params:
    """conf/ as a run sees it: the composed pipeline params with conf/machine.yaml's tracked
    machine settings merged in (no conf/local, no environment)."""
    raw = composed_params()
    machine = yaml.safe_load((ROOT / "conf" / "machine.yaml").read_text(encoding="utf-8"))
    for section, values in machine.items():
        if section in raw and isinstance(values, dict):
            raw[section] = {**raw[section], **values}
    return Params.model_validate(raw)


def mismatches(model: BaseModel, prefix: str = "") -> Iterator[str]:
    """``key: code <default> != conf/ <value>`` for each field whose code default differs."""
    for name, field in type(model).model_fields.items():
        key, value = f"{prefix}{name}", getattr(model, name)
        if key in NOT_SETTINGS:
            continue
        if isinstance(value, BaseModel):  # a nested section: its own fields' defaults
            yield from mismatches(value, f"{key}.")
        elif not field.is_required():
            default = field.get_default(call_default_factory=True, validated_data={})
            if default != value:
                yield f"{key}: code {default!r} != conf/ {value!r}"


def test_code_defaults_are_the_conf_defaults() -> None:
    found = list(mismatches(conf_params()))
    assert not found, found


def test_every_conf_key_is_checked() -> None:
    # conf/ keys are all fields of the models (extra="forbid"); this guards the walk above,
    # which would pass vacuously if a section did not validate into its model
    params = conf_params()
    sections: dict[str, Any] = {
        n: getattr(params, n) for n in Params.model_fields if n not in NOT_SETTINGS
    }
    assert all(v is not None for v in sections.values()), sections
