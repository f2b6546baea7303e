"""Prompt templates: text files under ``seedtune/llm/templates/``, rendered with ``$name`` fields.

A template file has a ``[system]`` and a ``[user]`` section. Its sha256 (``version``) goes
into every cache key, so editing a prompt invalidates exactly the answers it produced.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from string import Template

_SECTION = re.compile(r"^\[(system|user)\]\s*$", re.MULTILINE)


@dataclass(frozen=True)
class PromptTemplate:
    """A chat prompt template: system and user text with ``$field`` placeholders."""

    name: str
    system: str
    user: str
    version: str

    def render(self, **fields: object) -> list[dict[str, str]]:
        """Chat messages with every ``$field`` substituted (a missing field is a KeyError)."""
        messages = []
        if self.system:
            messages.append({"role": "system",
                             "content": Template(self.system).substitute(fields)})
        messages.append({"role": "user", "content": Template(self.user).substitute(fields)})
        return messages


def parse_template(name: str, text: str) -> PromptTemplate:
    """Split template text into its sections."""
    parts = _SECTION.split(text)
    sections = {parts[i]: parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    if "user" not in sections:
        raise ValueError(f"prompt template {name}: needs a [user] section")
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return PromptTemplate(name, sections.get("system", ""), sections["user"], version)


def load_template(name: str) -> PromptTemplate:
    """Load ``seedtune/llm/templates/<name>.txt``."""
    text = resources.files("seedtune.llm").joinpath("templates", f"{name}.txt").read_text("utf-8")
    return parse_template(name, text)
