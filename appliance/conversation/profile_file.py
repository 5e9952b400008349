"""A business profile's file: TOML or YAML (by extension) to plain data, and the line of a key.

Neither parser keeps positions in what it returns, so a validation error's line is found again in
the text: for YAML from the composed node tree (exact), for TOML by a small scan of table headers
and `key =` lines (exact for the block-style files operators write; an inline table points at the
key that holds it).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic_core import ErrorDetails

__all__ = [
    "ProfileError",
    "Syntax",
    "line_of",
    "parse",
    "quoted",
    "syntax_of",
    "validation_problem",
]

Syntax = Literal["toml", "yaml"]
Loc = Sequence[str | int]


class ProfileError(ValueError):
    """A profile that cannot be used; the message is one line naming the file and the line."""


def quoted(value: object) -> str:
    """A value as the file would spell it: strings in double quotes."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return str(value)


def syntax_of(path: Path) -> Syntax:
    match path.suffix.lower():
        case ".toml":
            return "toml"
        case ".yaml" | ".yml":
            return "yaml"
    raise ProfileError(f"{path}: a business profile is a .toml, .yaml or .yml file")


def parse(path: Path, text: str, syntax: Syntax) -> dict[str, Any]:
    """The document as plain data; a syntax error is a ProfileError with its line."""
    if syntax == "toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(_toml_message(path, str(exc))) from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(_yaml_message(path, exc)) from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ProfileError(f"{path} line 1: the profile must be a mapping of keys to values")
    return document


def _toml_message(path: Path, message: str) -> str:
    # Python 3.11's TOMLDecodeError has no line attribute; its message ends "(at line N, column M)".
    found = re.search(r"\s*\(at line (\d+), column \d+\)$", message)
    if found is None:
        return f"{path}: {message}"
    return f"{path} line {found[1]}: {message[: found.start()]}"


def _yaml_message(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return f"{path}: {problem}"
    return f"{path} line {mark.line + 1}: {problem}"


def line_of(text: str, syntax: Syntax, loc: Loc) -> int | None:
    """The 1-based line of the deepest part of `loc` (a pydantic error location) found in `text`."""
    if syntax == "yaml":
        return _yaml_line(text, loc)
    return _toml_line(text, loc)


def _yaml_line(text: str, loc: Loc) -> int | None:
    node = yaml.compose(text)
    line: int | None = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(
                ((key, value) for key, value in node.value if str(key.value) == str(part)), None
            )
            if pair is None:
                break
            line = pair[0].start_mark.line + 1
            node = pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


_TABLE = re.compile(r"^\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_ARRAY_TABLE = re.compile(r"^\[\[\s*([^\[\]]+?)\s*\]\]\s*(#.*)?$")
_BARE_OR_QUOTED = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^({_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*)\s*=")


def _dotted(key: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in key.split("."))


def _toml_line(text: str, loc: Loc) -> int | None:
    want = tuple(str(part) for part in loc)
    table: tuple[str, ...] = ()
    arrays: dict[tuple[str, ...], int] = {}
    best: tuple[int, int] | None = None  # (depth matched, line)
    in_string = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.count('"""') % 2 or line.count("'''") % 2:
            in_string = not in_string
            if not in_string:
                continue
        elif in_string:
            continue
        if found := _ARRAY_TABLE.match(line):
            name = _dotted(found[1])
            arrays[name] = arrays.get(name, -1) + 1
            table = (*name, str(arrays[name]))
            path = table
        elif found := _TABLE.match(line):
            table = _dotted(found[1])
            path = table
        elif found := _KEY.match(line):
            path = (*table, *_dotted(found[1]))
        else:
            continue
        # A table under the wanted key (the first `[[exceptions]]` for "exceptions") counts too.
        depth = min(len(path), len(want))
        if want[:depth] == path[:depth] and (best is None or depth > best[0]):
            best = (depth, number)
    return None if best is None else best[1]


def validation_problem(path: Path, text: str, syntax: Syntax, errors: list[ErrorDetails]) -> str:
    """The first problem in the file's order, as "<file> line N: <where>: <what>"."""
    problems = []
    for error in errors:
        loc = error["loc"]
        line = line_of(text, syntax, loc)
        problems.append((line if line is not None else 0, _describe(error)))
    line, what = min(problems, key=lambda problem: problem[0])
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{path} line {line}: {what}{more}" if line else f"{path}: {what}{more}"


def _describe(error: ErrorDetails) -> str:
    names = [str(part) for part in error["loc"] if isinstance(part, str)]
    where = ".".join(names)
    match error["type"]:
        case "missing":
            parent = ".".join(names[:-1])
            return f"{parent + ': ' if parent else ''}{names[-1]} is missing"
        case "extra_forbidden":
            parent = ".".join(names[:-1]) or "the profile"
            return f'{parent}: "{names[-1]}" is not a key the profile knows'
        case "value_error":
            what = error["msg"].removeprefix("Value error, ")
        case _:
            what = f"{error['msg'][0].lower()}{error['msg'][1:]}, not {quoted(error['input'])}"
    return f"{where}: {what}" if where else what
