"""The README and docs/: every generated table is what its sources give (results files, the settings model, the
metrics, the modules), results files say how they were made, links resolve, and the pages speak of the product, not
of how it was built."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REGENERATE = "regenerate with `python benchmarks/tables.py` (never edit a generated region by hand)"


def load_tables():
    spec = importlib.util.spec_from_file_location("tables", ROOT / "benchmarks" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tables():
    return load_tables()


@pytest.fixture(scope="module")
def rendered(tables):
    return {name: render() for name, render in tables.TABLES.items()}


def regions(text: str) -> dict[str, str]:
    return {m.group(2): m.group(3) for m in load_tables().REGION.finditer(text)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_generated_table_is_what_its_sources_give(page, rendered):
    found = regions(page.read_text())
    stale = [name for name, body in found.items() if body != rendered[name] + "\n"]
    assert not stale, f"{page.name}: tables {stale} differ from their sources; {REGENERATE}"


def test_the_pages_carry_the_tables_they_promise():
    names = {page.name: set(regions(page.read_text())) for page in PAGES}
    assert "summary" in names["README.md"]
    assert {"accuracy", "speed", "defaults", "broad", "broad-speed", "provenance"} <= names["benchmarks.md"]
    assert {"settings", "metrics"} <= names["serving.md"]
    assert "forecast" in names["forecasting.md"] and "modules" in names["architecture.md"]


def test_the_settings_reference_names_every_setting_of_the_model(tables):
    from stream_moe.config import Settings

    documented = re.findall(r"^\| `([\w.]+)` \|", regions((ROOT / "docs" / "serving.md").read_text())["settings"], re.M)

    def keys(cls, prefix=""):
        for name, field in cls.model_fields.items():
            nested = tables.submodel(field.annotation)
            if nested is None or type(None) in getattr(field.annotation, "__args__", ()):
                yield prefix + name
            if nested is not None:
                yield from keys(nested, f"{prefix}{name}.")

    assert documented == list(keys(Settings)), REGENERATE


def test_results_files_say_what_made_them_where_and_when(tables):
    for path in (ROOT / "benchmarks" / "results" / name for name in tables.RESULT_FILES):
        for line in path.read_text().splitlines():
            run = json.loads(line)
            assert run["command"].startswith("python benchmarks/suite.py"), path.name
            assert run["date"] and run["machine"]["cpu"] and run["machine"]["cores"]
            assert len(run["load_before"]) == 3 and len(run["load_after"]) == 3
            assert not run.get("dead_letters"), f"{path.name}: a run whose records were refused measures nothing"


def test_the_readme_is_short_and_links_resolve():
    assert len((ROOT / "README.md").read_bytes()) <= 15_500
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name} links to a missing {target}"


def anchors(page: pathlib.Path) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_links_to_sections_find_their_heading():
    for page in PAGES:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", page.read_text()):
            linked = page.parent / target if target else page
            assert anchor in anchors(linked), f"{page.name} links to #{anchor}, not a heading of {linked.name}"


# words about how the work was organised, not about what the product is
HISTORY = re.compile(
    r"\bstops? \d+|\bstop-\d+|\bissue[ -#]?\d+|\btoday's\b|\bpreviously\b|the default since"
    r"|\bbefore this (change|stop)|\bafter this (change|stop)|\bthe default then\b|\bat an earlier stop\b",
    re.I,
)
SKIP = {".venv", ".git", "results", "__pycache__", ".hypothesis", ".pytest_cache", "build"}


def repository_texts():
    for path in ROOT.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".md", ".yaml", ".yml", ".toml"} and path.name != "Makefile":
            if not SKIP & set(path.relative_to(ROOT).parts):
                yield path
    yield ROOT / "Makefile"
    yield ROOT / "Dockerfile"


def test_the_repository_speaks_of_what_is_not_of_how_it_was_built():
    this = pathlib.Path(__file__).resolve()
    found = []
    for path in repository_texts():
        if path.resolve() == this or not path.exists():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if HISTORY.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


@pytest.mark.slow
def test_the_readme_library_example_prints_what_the_readme_says(tmp_path):
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    expected = re.search(r"print\(metric\)\s+# (.+)", code).group(1)
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
