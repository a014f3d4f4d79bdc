"""The layering of the README's Layout section, checked on the source with `ast` (nothing is imported):

    chores/   atomic writes, file locks, git state, finiteness: imports no other project package and no
              torch, ray, optuna, plotly or pandas, so every package may import it
    trainer/  imports no ray, optuna or plotly, and no project package but chores
    spaces/   imports optuna and trainer.config only (no ray, torch, plotly; no other project module)
    search/   the only package that imports ray; never imports reports (the layer above it)
    reports/  no ray, no torch, no trainer/search/spaces (chores only); optuna only lazily (inside a function
              or a try/except ImportError), so a run directory copied to a laptop is enough

Imports under `if TYPE_CHECKING:` are not run and are not counted. `importlib.import_module("x")` and
`__import__("x")` with a literal name are.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("chores", "trainer", "spaces", "search", "reports")
PROJECT = set(PACKAGES)
SHARED = {"chores"}  # the package every other one may import


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name; `from a import b` gives "a.b" (b may be a module or a name in a)
    file: str
    line: int
    lazy: bool  # inside a function, or inside a try whose handler catches ImportError

    @property
    def top(self) -> str:
        return self.module.split(".")[0]

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.module}"


def _module_parts(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        for name in names:
            if name is None or (isinstance(name, ast.Name) and name.id in ("ImportError", "ModuleNotFoundError",
                                                                             "Exception", "BaseException")):
                return True
    return False


class _Collector(ast.NodeVisitor):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = str(path.relative_to(ROOT))
        parts = _module_parts(path)
        self.package = parts if path.name == "__init__.py" else parts[:-1]
        self.imports: list[Import] = []
        self._lazy = 0

    def _add(self, module: str, node: ast.AST) -> None:
        self.imports.append(Import(module, self.file, getattr(node, "lineno", 0), self._lazy > 0))

    def _lazily(self, node: ast.AST) -> None:
        self._lazy += 1
        self.generic_visit(node)
        self._lazy -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _lazily

    def visit_Try(self, node: ast.Try) -> None:
        if not _catches_import_error(node):
            self.generic_visit(node)
            return
        self._lazy += 1
        for child in node.body:
            self.visit(child)
        self._lazy -= 1
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(child)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package[: len(self.package) - (node.level - 1)]
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
        else:
            module = node.module or ""
        for alias in node.names:
            self._add(f"{module}.{alias.name}" if alias.name != "*" else module, node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            self._add(node.args[0].value, node)
        self.generic_visit(node)


def imports_of(package: str) -> list[Import]:
    found: list[Import] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        collector = _Collector(path)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        found += collector.imports
    return found


def _violations(package: str, bad) -> list[str]:
    return [str(i) for i in imports_of(package) if bad(i)]


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "search"])
def test_only_search_imports_ray(package):
    assert _violations(package, lambda i: i.top == "ray") == []


def test_trainer_imports_no_ray_optuna_or_plotly():
    assert _violations("trainer", lambda i: i.top in ("ray", "optuna", "plotly")) == []
    assert _violations("trainer", lambda i: i.top in PROJECT - {"trainer"} - SHARED) == []


def test_spaces_imports_optuna_and_trainer_config_only():
    def bad(i: Import) -> bool:
        if i.top in ("ray", "torch", "plotly"):
            return True
        if i.top == "trainer":  # `from trainer.config import X` or `from trainer import config`
            return not (i.module == "trainer.config" or i.module.startswith("trainer.config."))
        return i.top in PROJECT - {"spaces"}

    assert _violations("spaces", bad) == []


def test_reports_needs_neither_ray_nor_torch_nor_the_other_packages():
    assert _violations("reports", lambda i: i.top in ("ray", "torch") or i.top in PROJECT - {"reports"} - SHARED) == []
    # optuna is optional for reports: never imported when the module loads
    assert _violations("reports", lambda i: i.top == "optuna" and not i.lazy) == []


def test_chores_imports_no_project_package_nor_heavy_library():
    heavy = ("torch", "ray", "optuna", "plotly", "pandas", "numpy")
    assert _violations("chores", lambda i: i.top in heavy or i.top in PROJECT - {"chores"}) == []


def test_search_never_imports_reports():
    """reports reads what search writes; search printing a report would make the layers a cycle."""
    assert _violations("search", lambda i: i.top == "reports") == []


def test_the_checker_sees_what_it_should(tmp_path, monkeypatch):
    """The rules are only as good as the collector: feed it each kind of import once."""
    package = tmp_path / "demo"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "mod.py").write_text(
        "import ray.tune\n"
        "from ..other import thing\n"
        "from trainer import config\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import torch\n"
        "try:\n    import optuna\nexcept ImportError:\n    optuna = None\n"
        "def f():\n    import plotly\n    return __import__('search')\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = {i.module: i.lazy for i in imports_of("demo")}
    assert found == {"ray.tune": False, "demo.other.thing": False, "trainer.config": False, "typing.TYPE_CHECKING": False,
                     "optuna": True, "plotly": True, "search": True}
