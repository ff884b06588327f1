"""The layers of ARCHITECTURE.md hold, the contract covers every package, and it can fail.

`make lint` and `make test` run `lint-imports` too; running it here means a plain `pytest` run
also catches an import that goes up a layer."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _layers() -> list[list[str]]:
    (contract,) = [c for c in CONFIG["contracts"] if c["id"] == "layers"]
    return [[name.strip() for name in layer.replace("|", ":").split(":")] for layer in contract["layers"]]


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_the_layers_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_package_of_the_project_is_under_the_contract():
    packages = sorted(
        p.parent.name
        for p in ROOT.glob("*/__init__.py")
        if p.parent.name not in ("tests", "bench") and not p.parent.name.startswith(".")
    )
    assert sorted(CONFIG["root_packages"]) == packages


def test_every_module_of_spark_sits_in_one_layer():
    """spark holds both the helpers at the bottom and the composition root at the top, so each
    of its modules is named in the contract; a new one must be placed on purpose."""
    named = [name for layer in _layers() for name in layer if name.startswith("spark.")]
    modules = sorted(
        f"spark.{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "spark").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())
    )
    modules.remove("spark.tests")
    assert sorted(named) == modules


def test_architecture_md_names_every_layer():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    missing = [name for layer in _layers() for name in layer if f"`{name}`" not in text]
    assert missing == []


def test_an_import_up_a_layer_breaks_the_contract(tmp_path):
    """The contract is not vacuous: a copy of the project with one upward import fails it."""
    for name in [*CONFIG["root_packages"], "pyproject.toml"]:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "tests"))
        else:
            shutil.copy(source, tmp_path / name)
    assert _lint(tmp_path).returncode == 0
    (tmp_path / "drivers" / "probe.py").write_text("def f():\n    from dispatch import models  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode == 1
    assert "drivers is not allowed to import dispatch" in result.stdout
