"""The code reads as its layout says: no module reaches into another's private names, and one
function holds the whole path of a call."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from appliance.telephony.calls import CallDesk

PACKAGE = Path(__file__).resolve().parents[2] / "appliance"


def _own_private_names(tree: ast.AST) -> set[str]:
    """The private names a module defines: its functions, classes, globals and `self._x`."""
    own: set[str] = set()
    for node in ast.walk(tree):
        match node:
            case (
                ast.FunctionDef(name=name)
                | ast.AsyncFunctionDef(name=name)
                | ast.ClassDef(name=name)
            ):
                own.add(name)
            case ast.Attribute(value=ast.Name(id="self" | "cls"), attr=attr):
                own.add(attr)
            case ast.AnnAssign(target=ast.Name(id=name)):
                own.add(name)
            case ast.Assign(targets=targets):
                own.update(t.id for t in targets if isinstance(t, ast.Name))
    return {name for name in own if name.startswith("_")}


def private_reaches(source: str) -> list[str]:
    """`other._name` where `_name` is private to some other module."""
    tree = ast.parse(source)
    own = _own_private_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") or node.attr in own:
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_check_finds_a_reach_into_another_modules_private_state() -> None:
    source = "def f(records):\n    return records._clock.now()\n"
    assert private_reaches(source) == ["line 2: records._clock"]
    own = "class A:\n    def __init__(self):\n        self._x = 1\n\ndef g(a):\n    return a._x\n"
    assert private_reaches(own) == []


def test_no_module_reaches_into_another_modules_private_names() -> None:
    found = {
        str(path.relative_to(PACKAGE.parent)): reaches
        for path in sorted(PACKAGE.rglob("*.py"))
        if (reaches := private_reaches(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_the_path_of_a_call_is_one_function_that_reads_top_to_bottom() -> None:
    source = inspect.getsource(CallDesk.answer)
    steps = ["reserve()", "self._record(line)", "self._watch(info)", "_fan_out(", ".run()"]
    positions = [source.find(step) for step in steps]
    assert -1 not in positions, dict(zip(steps, positions, strict=True))
    assert positions == sorted(positions)
