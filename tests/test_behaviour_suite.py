"""The behaviour suite, run by pytest: every scenario against every Python target.

Targets per pattern, each with the default options and with every named option set of
the pattern's scenarios.json (``non_default``: hostile strings, other names, other TTLs,
another serializer): the reference, and — where the pattern has a Python template — the
rendered Python file. One driver process plays all scenarios of a target; each scenario
is its own test.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from templategen.engine import render
from templategen.redis_server import RedisServer
from templategen.registry import Registry
from templategen.suite.runner import ScenarioResult, Target, run_target
from templategen.suite.scenarios import load_scenarios
from templategen.suite.targets import (
    default_options,
    option_sets,
    reference_target,
    rendered_target,
)

REGISTRY = Registry()
PATTERNS = [p for p in REGISTRY.names() if load_scenarios(p)]
RENDERED = [p for p in PATTERNS if "python" in REGISTRY.get(p).languages]


def _kinds(pattern: str) -> list[str]:
    return ["reference", "rendered"] if pattern in RENDERED else ["reference"]


CASES = [
    pytest.param(pattern, kind, set_name, sc.name, id=f"{pattern}-{kind}[{set_name}]-{sc.name}")
    for pattern in PATTERNS
    for kind in _kinds(pattern)
    for set_name in option_sets(pattern)
    for sc in load_scenarios(pattern)
]

Lookup = Callable[[str, str, str, str], ScenarioResult]


@pytest.fixture(scope="module")
def rendered_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rendered")


def _target(pattern: str, kind: str, set_name: str, workdir: Path) -> Target:
    options = option_sets(pattern)[set_name]
    label = f"{kind}[{set_name}]"
    if kind == "reference":
        return reference_target(pattern, options, label)
    given = {k: v for k, v in options.items() if v != default_options(pattern).get(k)}
    return rendered_target(render(pattern, "python", given), workdir / set_name, label)


@pytest.fixture(scope="module")
def suite_results(redis_server: RedisServer, rendered_dir: Path) -> Iterator[Lookup]:
    cache: dict[tuple[str, str, str, str], ScenarioResult] = {}

    def result(pattern: str, kind: str, set_name: str, scenario: str) -> ScenarioResult:
        key = (pattern, kind, set_name)
        if (*key, scenario) not in cache:
            target = _target(pattern, kind, set_name, rendered_dir)
            for r in run_target(target, load_scenarios(pattern), redis_server.url):
                cache[(*key, r.scenario)] = r
        return cache[(*key, scenario)]

    yield result


@pytest.mark.parametrize(("pattern", "kind", "set_name", "scenario"), CASES)
def test_implementation_behaves_as_the_scenario_says(
    suite_results: Lookup, pattern: str, kind: str, set_name: str, scenario: str
) -> None:
    result = suite_results(pattern, kind, set_name, scenario)
    if result.status == "skipped":
        pytest.skip(result.message)
    assert result.status == "passed", result.message


@pytest.mark.parametrize("pattern", RENDERED)
@pytest.mark.parametrize("set_name", ["defaults", "non_default"])
def test_rendered_python_is_ruff_clean_and_stands_alone(
    pattern: str, set_name: str, tmp_path: Path
) -> None:
    sets = option_sets(pattern)
    if set_name not in sets:
        pytest.skip(f"{pattern} has no {set_name} option set")
    given = {k: v for k, v in sets[set_name].items() if v != default_options(pattern).get(k)}
    rendered = render(pattern, "python", given)
    assert "templategen" not in "".join(
        line for line in rendered.text.splitlines() if line.startswith(("import", "from"))
    ), "rendered code must not import templategen"
    path = tmp_path / rendered.path.name
    path.write_text(rendered.text, encoding="utf-8")
    ruff = [sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select",
            "E,F,W,B,UP,SIM,I", "--line-length", "88", str(path)]  # fmt: skip
    out = subprocess.run(ruff, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_suite_catches_the_design_page_defects(redis_server: RedisServer) -> None:
    """A cache-aside with a falsy-miss check and no lease must fail the suite."""
    target = Target(
        pattern="cache-aside",
        language="python",
        label="naive",
        command=[sys.executable, "-m", "templategen.suite.pydriver",
                 "--module", "tests.fixtures.naive_cache_aside"],
        options=default_options("cache-aside"),
    )  # fmt: skip
    results = {
        r.scenario: r for r in run_target(target, load_scenarios("cache-aside"), redis_server.url)
    }
    assert results["cached_falsy_values_are_hits"].status == "failed"
    assert results["invalidation_during_load_never_leaves_stale_value"].status == "failed"
    assert results["non_positive_ttl_is_refused"].status == "failed"
    assert results["miss_loads_once_then_hits"].status == "passed"
