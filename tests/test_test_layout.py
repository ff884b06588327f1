"""Test modules share fixtures through conftest.py and plain helpers through helper modules
(`tests/helpers.py`, `<app>/tests/factories.py`, `<app>/tests/helpers.py`), never by importing
another test module: pytest would collect the imported tests twice under a new name, and a
fixture imported by name silently shadows the conftest one."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".venv", ".git", "node_modules", "var", "migrations"}


def _test_modules() -> list[Path]:
    return sorted(
        path
        for path in ROOT.rglob("test*.py")
        if not SKIP & set(path.relative_to(ROOT).parts) and (path.name.startswith("test_") or path.name == "tests.py")
    )


def _imported_modules(path: Path) -> list[str]:
    """Every module name an import in `path` refers to, relative imports resolved."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]  # `from . import test_x`
    return names


def _is_test_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last.startswith("test_")


def test_no_test_module_imports_another_test_module():
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _test_modules()
        for name in _imported_modules(path)
        if _is_test_module(name)
    ]
    assert offenders == []


def test_the_scan_sees_the_test_modules():
    assert len(_test_modules()) > 50


def test_every_folder_with_tests_is_in_the_suite():
    """`make test` runs pytest over `testpaths`: a folder holding test modules but missing from
    it (dispatch/ was, for a while) would never run in CI."""
    import tomllib

    testpaths = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"])
    folders = {path.relative_to(ROOT).parts[0] for path in _test_modules() if len(path.relative_to(ROOT).parts) > 1}
    assert folders, "the scan found no test modules"
    assert folders - {"bench"} <= testpaths, sorted(folders - testpaths)
