"""What every task shares: its template loaded by name, and the strict base of its schema."""

from __future__ import annotations

from importlib import resources

from pydantic import BaseModel, ConfigDict

from seedtune.llm.prompts import PromptTemplate, parse_template


def load_template(name: str) -> PromptTemplate:
    """Load ``seedtune/tasks/templates/<name>.txt`` (its version: the sha256 of the text)."""
    text = resources.files("seedtune.tasks").joinpath("templates", f"{name}.txt").read_text("utf-8")
    return parse_template(name, text)


class Strict(BaseModel):
    """A schema that refuses keys it does not name (``additionalProperties: false``)."""

    model_config = ConfigDict(extra="forbid")
