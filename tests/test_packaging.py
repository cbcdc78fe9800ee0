"""A non-editable install ships the reference and the templates inside the package."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_reference_and_templates_and_runs_outside_the_checkout(
    tmp_path: Path,
) -> None:
    # Build from a private copy: setuptools writes build/ and *.egg-info beside the
    # sources, and two builds sharing them (parallel test runs) break each other.
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
            "node_modules", "output",
        ),
    )  # fmt: skip
    # A harness's installed dependencies must never ship: stand one in for node_modules.
    planted = source / "templategen" / "drivers" / "typescript" / "node_modules" / "x" / "a.js"
    planted.parent.mkdir(parents=True)
    planted.write_text("// installed by npm ci\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True,
    )  # fmt: skip
    wheel = next((tmp_path / "dist").glob("templategen-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "templategen/reference/cache_aside.py" in names
    assert "templategen/reference/py.typed" in names
    assert "templategen/suite/pydriver/__main__.py" in names
    assert "templategen/drivers/typescript/package-lock.json" in names
    assert not [n for n in names if "node_modules" in n]
    patterns = sorted(p.name for p in (ROOT / "templates").iterdir() if p.is_dir())
    assert patterns, "no pattern folders found"
    for f in sorted((ROOT / "templates").rglob("*")):
        if f.is_file() and f.suffix in {".j2", ".toml", ".json", ".md"}:
            assert f"templategen/templates/{f.relative_to(ROOT / 'templates')}" in names

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True,
    )  # fmt: skip
    # -S: no site processing, so the checkout's editable-install hook cannot be what
    # makes the import work; dependencies come from this environment's site-packages.
    probe = (
        "import sys, json;"
        f"sys.path[:0] = [{str(target)!r}, {sysconfig.get_paths()['purelib']!r}];"
        "import templategen, templategen.reference.cache_aside as ca;"
        "from templategen.suite.scenarios import load_scenarios;"
        "print(json.dumps([templategen.__file__, ca.CacheAside.__name__,"
        " len(load_scenarios('cache-aside'))]))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd=tmp_path, check=True, capture_output=True
    )
    location, name, scenario_count = json.loads(out.stdout)
    assert location.startswith(str(target))
    assert name == "CacheAside"
    assert scenario_count > 0
