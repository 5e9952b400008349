"""The agent's persona: its system prompt and the fixed phrases it says without the model."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = ["Persona"]


@dataclass(frozen=True, slots=True)
class Persona:
    system_prompt: str
    greeting: str
    reprompt: str
    goodbye_no_input: str
    goodbye_time_limit: str
    apology: str
    """Said when a tool call could not be made to work."""
    trouble: str
    """Said when an engine failed and no fallback could answer."""
    refusal: str
    """Said instead of what the safety screen will not let through (see `guard.py`)."""
    goodbye_abuse: str
    """Said as the agent ends a call whose caller kept asking for harm or abusing it."""
    medical: str
    """Said instead of a sentence of the agent's that gave medical advice."""
    self_harm: str
    """Said to a caller who spoke of harming themselves: where to find help now."""
    ungrounded: str
    """Said instead of a sentence of the agent's that stated a fact nothing gave it (an answer
    from the model's memory, an invented price: see `grounding.py`)."""

    @property
    def refusals(self) -> dict[str, str]:
        """The refusal for each screen category that has its own (see `Guard`)."""
        return {
            "medical": self.medical,
            "self_harm": self.self_harm,
            "ungrounded": self.ungrounded,
        }

    @classmethod
    def load(
        cls,
        *,
        agent_name: str,
        business_name: str,
        prompt_file: Path | None = None,
        greeting: str | None = None,
        about: str = "",
    ) -> Persona:
        """The built-in persona (or `prompt_file`), with the names filled in and `about` (what
        the agent knows of the business, and which tools answer what) after it."""
        prompts = resources.files("appliance.conversation.prompts")
        template = (
            prompt_file.read_text(encoding="utf-8")
            if prompt_file is not None
            else prompts.joinpath("persona.md").read_text(encoding="utf-8")
        )
        phrases = tomllib.loads(prompts.joinpath("phrases.toml").read_text(encoding="utf-8"))
        names = {"agent_name": agent_name, "business_name": business_name}
        filled = {key: str(value).format(**names) for key, value in phrases.items()}
        if greeting:
            filled["greeting"] = greeting.format(**names)
        prompt = template.format(**names).strip()
        if about.strip():
            prompt = f"{prompt}\n\n{about.strip()}"
        return cls(system_prompt=prompt, **filled)
