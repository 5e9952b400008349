"""Scenario files: a caller's turns and what should happen, in YAML.

```yaml
name: weather-question
caller:
  - say: ../fixtures/audio/goforward.wav     # a recording, relative to this file
    expect:
      heard: go forward ten meters           # reference text for the WER check
      max_wer: 0.15
      reply_contains: [meters]
      reply_not_contains: [sorry]
      max_turn_ms: 2500
  - text: What time is it?                  # synthesized by espeak-ng, not the agent's voice
  - say: ../fixtures/audio/cards/005.wav
    barge_in_ms: 800                         # start 800 ms into the agent's reply
    expect:
      agent_stops_within_ms: 300
expect:
  ended: caller hung up
  max_turn_ms: 3000                          # for every turn
```
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["CallerTurn", "Scenario", "ScenarioError", "TurnExpectation", "load_scenarios"]


class ScenarioError(ValueError):
    """A scenario file cannot be used; the message names the file and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TurnExpectation(_Strict):
    heard: str | None = None
    """Reference text of what the caller said."""
    max_wer: float = Field(default=0.15, ge=0.0)
    reply_contains: list[str] = Field(default_factory=list)
    """Words the reply must hold (any case); "9 AM|nine" is met by either."""
    reply_not_contains: list[str] = Field(default_factory=list)
    max_turn_ms: float | None = Field(default=None, gt=0)
    agent_stops_within_ms: float | None = Field(default=None, gt=0)
    """For a barge-in turn: from the caller's first voiced frame to the agent going quiet."""
    tools: list[str] | None = None
    """Tools that must run (and succeed) for this turn; `[]`: no tool may run. Unchecked when
    left out."""
    grounded: bool = True
    """Every number in the reply (a price, an hour, a date, degrees) must come from the business
    profile, a tool's result or the caller's own words."""


class CallerTurn(_Strict):
    say: Path | None = None
    text: str | None = None
    voice: str = "en-us"
    """For `text`: the espeak-ng voice the caller speaks with (`espeak-ng --voices`), e.g.
    en-us, en-gb, en-gb-scotland, en-us+f3 (a female variant), en-029."""
    phone: Literal["wideband", "mulaw"] = "wideband"
    """`mulaw`: the caller's audio goes through an 8 kHz G.711 mu-law phone line first."""
    barge_in_ms: int | None = Field(default=None, ge=0)
    gap_ms: int = Field(default=1000, ge=0)
    """Silence the caller waits for after the agent stops (for turns that are not barge-ins)."""
    expect: TurnExpectation = Field(default_factory=TurnExpectation)

    @model_validator(mode="after")
    def _one_source(self) -> CallerTurn:
        if (self.say is None) == (self.text is None):
            raise ValueError("a caller turn needs exactly one of `say` (a WAV) or `text`")
        return self


class CallExpectation(_Strict):
    ended: str | None = None
    max_turn_ms: float | None = Field(default=None, gt=0)
    turns: int | None = Field(default=None, ge=0)


class Scenario(_Strict):
    name: str
    description: str = ""
    caller: list[CallerTurn] = Field(min_length=1)
    hang_up: Literal["after-reply", "never"] = "after-reply"
    caller_id: str | None = None
    """The caller's number, on a line that vouches for it (their own appointments, what is
    remembered of them); without it the call comes from the scenario's name, unvouched."""
    expect: CallExpectation = Field(default_factory=CallExpectation)
    source: Path = Path()
    """The file this scenario came from; `say` paths are relative to its folder."""


def _load(path: Path) -> Scenario:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: a scenario is a YAML mapping with `name` and `caller`")
    try:
        scenario = Scenario.model_validate({**raw, "source": path})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ScenarioError(f"{path}: {problems}") from exc
    for turn in scenario.caller:
        if turn.say is not None and not (path.parent / turn.say).is_file():
            raise ScenarioError(f"{path}: no such recording: {turn.say}")
    return scenario


def load_scenarios(paths: Iterable[Path]) -> list[Scenario]:
    """Every scenario in `paths` (files, or folders searched for *.yaml), in a stable order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted([*path.rglob("*.yaml"), *path.rglob("*.yml")]))
        elif path.is_file():
            files.append(path)
        else:
            raise ScenarioError(f"{path}: no such file or folder")
    if not files:
        raise ScenarioError("no scenario files found")
    return [_load(f) for f in files]
