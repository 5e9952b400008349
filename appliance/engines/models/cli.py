"""`appliance models list|install|verify`: each returns an exit code and prints for people.

Results go to stdout; progress and errors that stop a command go to stderr. Exit codes: 0 all
well, 1 something is missing, corrupt or failed to install, 2 an unknown model name.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.engines.models.install import InstallError, ModelOutcome, install
from appliance.engines.models.manifest import Model, UnknownModel
from appliance.engines.models.store import ModelStore, Status

__all__ = ["install_models", "list_models", "verify_models"]

_LICENCE_WIDTH = 28


def list_models(store: ModelStore, *, as_json: bool = False) -> int:
    """Print every model in the manifest with its size, licence and state on this box."""
    rows = [_row(store, model) for model in store.manifest.models]
    if as_json:
        print(json.dumps([dataclasses.asdict(row) for row in rows], indent=2))
        return 0
    header = ["NAME", "ROLE", "ENGINE", "SIZE MB", "LICENCE", "STATE", "DEFAULT"]
    table = [header] + [
        [
            row.name,
            row.role,
            row.engine,
            f"{row.bytes / 1e6:,.1f}",
            _clip(row.licence, _LICENCE_WIDTH),
            row.state,
            "*" if row.default else "",
        ]
        for row in rows
    ]
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    for line in table:
        cells = [
            cell.rjust(width) if column == 3 else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    print(f"\nmodels directory: {store.models_dir}  (* = installed by default)")
    return 0


def install_models(
    store: ModelStore,
    names: Sequence[str],
    *,
    prefer_upstream: bool = False,
    in_use: Sequence[str] = (),
) -> int:
    """Install the named models; when none are named, the defaults and the models `in_use`
    (those the settings run: a board configured for a larger model gets it). One summary
    line each."""
    defaults = [model.name for model in store.manifest.defaults()]
    chosen = list(names) or [*defaults, *(name for name in in_use if name not in defaults)]
    try:
        report = install(store, chosen, progress=True, prefer_upstream=prefer_upstream)
    except UnknownModel as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for outcome in report.models:
        print(_summary(store, outcome))
    return 0 if report.ok else 1


def verify_models(store: ModelStore, names: Sequence[str], *, deep: bool = False) -> int:
    """Check the named models (default ones and any installed when none); print each fix."""
    try:
        chosen = [store.manifest.get(name) for name in names] or _expected(store)
    except UnknownModel as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = False
    for model in chosen:
        problems = store.verify(model.name, deep=deep)
        if not problems:
            how = "hashed" if deep else "checked"
            print(f"{model.name}: ok ({_files(len(model.files))} {how})")
            continue
        failed = True
        for problem in problems:
            print(f"{problem}\n  fix: {problem.fix}")
    return 1 if failed else 0


@dataclass(frozen=True, slots=True)
class _Row:
    """One model as `list` shows it; the JSON output is these fields."""

    name: str
    role: str
    engine: str
    bytes: int
    licence: str
    state: Status
    default: bool
    description: str
    path: str


def _row(store: ModelStore, model: Model) -> _Row:
    return _Row(
        name=model.name,
        role=model.role,
        engine=model.engine,
        bytes=model.total_bytes,
        licence=model.licence,
        state=store.status(model.name),
        default=model.default,
        description=model.description,
        path=str(store.path(model.name)),
    )


def _expected(store: ModelStore) -> list[Model]:
    # A model nobody installed is not a problem, unless it is one the appliance runs by default.
    return [
        model for model in store.manifest.models if model.default or store.path(model.name).is_dir()
    ]


def _summary(store: ModelStore, outcome: ModelOutcome) -> str:
    where = store.path(outcome.name)
    files = len(outcome.written) + len(outcome.present)
    if not outcome.ok:
        return f"{outcome.name}: FAILED: {outcome.error}"
    if not outcome.written:
        return f"{outcome.name}: already installed ({_files(files)}) in {where}"
    return (
        f"{outcome.name}: installed {len(outcome.written)} of {_files(files)} "
        f"({outcome.written_bytes / 1e6:,.1f} MB) in {where}"
    )


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
