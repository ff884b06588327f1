"""The production image: it carries the application and nothing that only tests or benchmarks
use (tests/, bench/, each app's tests/ package, conftest.py). There is no Docker engine here, so
the build context is worked out from the Dockerfile's COPY lines and .dockerignore."""

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ignore_patterns() -> list[re.Pattern]:
    """.dockerignore lines as regexes over paths relative to the context (Docker's syntax:
    `*` within one path segment, `**` across segments; a directory's match covers its contents)."""
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("!"), "exceptions are not modelled by this test"
        regex = ""
        for part in re.split(r"(\*\*/|\*\*|\*|\?)", line.strip("/")):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
        patterns.append(re.compile(f"{regex}(?:/.*)?"))
    return patterns


def _copied_sources() -> list[str]:
    sources = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def _image_files() -> set[str]:
    ignored = _ignore_patterns()
    files = set()
    for source in _copied_sources():
        top = (ROOT / source).resolve()
        walk = [(str(top.parent), [], [top.name])] if top.is_file() else os.walk(top)
        for folder, dirs, names in walk:
            dirs[:] = [d for d in dirs if d not in (".git", ".venv", "node_modules")]
            for name in names:
                rel = Path(folder, name).resolve().relative_to(ROOT).as_posix()
                if not any(p.fullmatch(rel) for p in ignored):
                    files.add(rel)
    return files


def test_the_image_carries_the_application():
    files = _image_files()
    assert {"manage.py", "spark/wsgi.py", "spark/celery.py", "orders/models.py"} <= files
    assert any(f.startswith("templates/") for f in files) and any(f.startswith("static/") for f in files)


def test_the_image_carries_every_package_of_the_application():
    """Every package the layers contract covers (every app and surface) is in the image: dispatch
    was once left out, and the image could not start."""
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["root_packages"]
    files = _image_files()
    missing = [p for p in packages if f"{p}/__init__.py" not in files]
    assert missing == []


def test_the_image_carries_no_tests_benchmarks_or_fixtures():
    leaked = sorted(
        f
        for f in _image_files()
        if {"tests", "bench"} & set(f.split("/")[:-1]) or f.split("/")[-1] in ("conftest.py", "benchping.py")
    )
    assert leaked == []
