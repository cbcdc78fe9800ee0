"""The behaviour suite, run by pytest: every scenario against every Python target.

Targets per pattern: the reference with the default options and with each named
non-default option set of the pattern's scenarios.json. (Rendered Python targets join
as their templates land.) One driver process plays all scenarios of one target; each
scenario is reported as its own test.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import pytest

from templategen.redis_server import RedisServer
from templategen.suite.runner import ScenarioResult, Target, run_target
from templategen.suite.scenarios import load_option_sets, load_scenarios

PATTERNS = sorted(
    p.name
    for p in files("templategen.templates").iterdir()
    if p.is_dir() and p.joinpath("scenarios.json").is_file()
)
HMAC_ENV = {"CACHE_HMAC_KEY": "k" * 32}


def defaults(pattern: str) -> dict[str, Any]:
    text = files("templategen.templates").joinpath(pattern, "pattern.toml").read_text("utf-8")
    return {o["name"]: o["default"] for o in tomllib.loads(text).get("options", [])}


def option_sets(pattern: str) -> dict[str, dict[str, Any]]:
    base = defaults(pattern)
    sets = {"defaults": base}
    for name, overrides in load_option_sets(pattern).items():
        sets[name] = {**base, **overrides}
    return sets


def reference_target(pattern: str, set_name: str, options: dict[str, Any]) -> Target:
    module = "templategen.reference." + pattern.replace("-", "_")
    return Target(
        pattern=pattern,
        language="python",
        label=f"reference[{set_name}]",
        command=[sys.executable, "-m", "templategen.suite.pydriver", "--module", module],
        options=options,
        env={**_base_env(), **HMAC_ENV},
    )


def _base_env() -> dict[str, str]:
    import os

    return dict(os.environ)


CASES = [
    pytest.param(pattern, set_name, sc.name, id=f"{pattern}-reference[{set_name}]-{sc.name}")
    for pattern in PATTERNS
    for set_name in option_sets(pattern)
    for sc in load_scenarios(pattern)
]


@pytest.fixture(scope="module")
def suite_results(redis_server: RedisServer) -> Iterator[dict[tuple[str, str, str], Any]]:
    cache: dict[tuple[str, str, str], ScenarioResult] = {}
    ran: set[tuple[str, str]] = set()

    def result(pattern: str, set_name: str, scenario: str) -> ScenarioResult:
        if (pattern, set_name) not in ran:
            ran.add((pattern, set_name))
            target = reference_target(pattern, set_name, option_sets(pattern)[set_name])
            for r in run_target(target, load_scenarios(pattern), redis_server.url):
                cache[(pattern, set_name, r.scenario)] = r
        return cache[(pattern, set_name, scenario)]

    yield result  # type: ignore[misc]


@pytest.mark.parametrize(("pattern", "set_name", "scenario"), CASES)
def test_reference_behaves_as_the_scenario_says(
    suite_results: Any, pattern: str, set_name: str, scenario: str
) -> None:
    result = suite_results(pattern, set_name, scenario)
    if result.status == "skipped":
        pytest.skip(result.message)
    assert result.status == "passed", result.message


def test_suite_catches_the_design_page_defects(redis_server: RedisServer) -> None:
    """A cache-aside with a falsy-miss check and no lease must fail the suite."""
    target = Target(
        pattern="cache-aside",
        language="python",
        label="naive",
        command=[
            sys.executable,
            "-m",
            "templategen.suite.pydriver",
            "--module",
            "tests.fixtures.naive_cache_aside",
        ],
        options=defaults("cache-aside"),
    )
    results = {
        r.scenario: r for r in run_target(target, load_scenarios("cache-aside"), redis_server.url)
    }
    assert results["cached_falsy_values_are_hits"].status == "failed"
    assert results["invalidation_during_load_never_leaves_stale_value"].status == "failed"
    assert results["non_positive_ttl_is_refused"].status == "failed"
    assert results["miss_loads_once_then_hits"].status == "passed"
