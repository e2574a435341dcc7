"""The package's shape, as issue 11 set it: data flows one way through the modules in the
order the package docstring's tour lists them, no module over 400 lines, no function over
60. A change that breaks one of these fails here, where it is cheap to mend."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import feeds

PACKAGE = Path(feeds.__file__).parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        found[".".join(parts)] = path
    return found


def _tour() -> list[str]:
    """Module names in the order the package docstring's tour gives them."""
    doc = feeds.__doc__ or ""
    return re.findall(r"^- ``([\w.]+)``", doc, flags=re.MULTILINE)


def _imports(name: str, path: Path) -> set[str]:
    """The package's own modules that ``name`` imports (at any level, lazily or not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1] if node.level > 1 else package
            target = ".".join([*base, node.module] if node.module else base)
            out.add(target)
            for alias in node.names:
                out.add(f"{target}.{alias.name}" if target else alias.name)
    known = _modules()
    return {m.split(".")[0] for m in out if m in known and m} - {name.split(".")[0], ""}


def test_every_module_is_in_the_tour_and_the_tour_names_only_modules() -> None:
    tops = {name.split(".")[0] for name in _modules() if name}
    tour = _tour()
    assert sorted(set(tour)) == sorted(tops - {"__main__"})


def test_no_module_imports_one_later_in_the_tour() -> None:
    order = {name: i for i, name in enumerate(_tour())}
    upward = []
    for name, path in _modules().items():
        top = name.split(".")[0]
        if not name or top == "__main__":
            continue
        for target in _imports(name, path):
            if order[target] > order[top]:
                upward.append(f"{name} imports {target}")
    assert upward == []


def test_no_module_over_400_lines_and_no_function_over_60() -> None:
    long_modules = [f"{p.name}: {n}" for p in PACKAGE.rglob("*.py")
                    if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    long_functions = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.name}:{node.name}: {length}")
    assert long_modules == []
    assert long_functions == []
