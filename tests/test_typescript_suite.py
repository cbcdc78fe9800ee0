"""The behaviour suite against the rendered TypeScript: the same scenarios, the same runner.

Targets per pattern that has a TypeScript template and scenarios: the defaults, and every
named option set of its scenarios.json (``non_default``: hostile strings, other names,
other TTLs). Values TypeScript does not offer (msgpack and pickle serializers) are left
at their defaults; the scenarios that need them are then skipped, with the reason. One
driver process plays all scenarios of a target; each scenario is its own test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from templategen.engine import render
from templategen.redis_server import RedisServer
from templategen.registry import Registry
from templategen.suite import targets
from templategen.suite.runner import ScenarioResult, run_target
from templategen.suite.scenarios import load_scenarios
from templategen.suite.targets import default_options, option_sets, rendered_target
from templategen.suite.tstarget import has_typescript_adapter

REGISTRY = Registry()
PATTERNS = [
    p for p in REGISTRY.names() if "typescript" in REGISTRY.get(p).languages and load_scenarios(p)
]


def given_options(pattern: str, set_name: str) -> dict[str, Any]:
    return targets.given_options(pattern, "typescript", set_name)


CASES = [
    pytest.param(pattern, set_name, sc.name, id=f"{pattern}-typescript[{set_name}]-{sc.name}")
    for pattern in PATTERNS
    for set_name in option_sets(pattern, "typescript")
    for sc in load_scenarios(pattern)
]

Lookup = Callable[[str, str, str], ScenarioResult]


def test_every_typescript_pattern_with_scenarios_has_an_adapter() -> None:
    assert PATTERNS, "no TypeScript pattern has scenarios"
    assert [p for p in PATTERNS if not has_typescript_adapter(p)] == []


def test_non_default_sets_keep_their_hostile_strings() -> None:
    for pattern in PATTERNS:
        # http-cache-headers writes no Redis keys: it has no prefix to make hostile.
        has_prefix = "key_prefix" in default_options(pattern, "typescript")
        if has_prefix and "non_default" in option_sets(pattern, "typescript"):
            assert "\\" in given_options(pattern, "non_default")["key_prefix"]


@pytest.fixture(scope="module")
def suite_results(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lookup]:
    workdir = tmp_path_factory.mktemp("typescript-suite")
    cache: dict[tuple[str, str, str], ScenarioResult] = {}

    def result(pattern: str, set_name: str, scenario: str) -> ScenarioResult:
        if (pattern, set_name, scenario) not in cache:
            rendered = render(pattern, "typescript", given_options(pattern, set_name))
            label = f"typescript[{set_name}]"
            target = rendered_target(rendered, workdir / pattern / set_name, label)
            for r in run_target(target, load_scenarios(pattern), redis_server.url):
                cache[(pattern, set_name, r.scenario)] = r
        return cache[(pattern, set_name, scenario)]

    yield result


@pytest.mark.parametrize(("pattern", "set_name", "scenario"), CASES)
def test_rendered_typescript_behaves_as_the_scenario_says(
    suite_results: Lookup, pattern: str, set_name: str, scenario: str
) -> None:
    result = suite_results(pattern, set_name, scenario)
    if result.status == "skipped":
        pytest.skip(result.message)
    assert result.status == "passed", result.message


def test_verify_runs_the_typescript_scenarios(redis_server: RedisServer, tmp_path: Path) -> None:
    from templategen.verify import run, select_targets

    targets = select_targets(REGISTRY, ["cache-aside"], ["typescript"], {"ttl": 60})
    report = run(redis_server.url, targets)
    assert report.passed, report.to_json()
    (result,) = report.results
    assert result.language == "typescript"
    assert len(result.scenarios) == len(load_scenarios("cache-aside"))


#: The design page's TypeScript cache-aside, as the adapter sees it: no lease, and
#: `ttl || default` takes 0 as "the default". (Its falsy check is on the raw JSON text,
#: which is never empty, so that one does not show with values it wrote itself.)
DESIGN_PAGE_CACHE_ASIDE = """
interface Client {
  sendCommand(args: ReadonlyArray<string>): Promise<unknown>;
}

export class CacheAside {
  constructor(private readonly client: Client) {}

  async get<T>(key: string, loader: () => Promise<T>, ttl?: number): Promise<T> {
    const fullKey = `cache:${key}`;
    const cached = await this.client.sendCommand(["GET", fullKey]);
    if (cached) {
      return JSON.parse(String(cached)) as T;
    }
    const data = await loader();
    await this.client.sendCommand(["SETEX", fullKey, String(ttl || 3600), JSON.stringify(data)]);
    return data;
  }

  async set<T>(key: string, value: T, ttl?: number): Promise<void> {
    const text = JSON.stringify(value);
    await this.client.sendCommand(["SETEX", `cache:${key}`, String(ttl || 3600), text]);
  }

  async delete(key: string): Promise<boolean> {
    return (await this.client.sendCommand(["DEL", `cache:${key}`])) === 1;
  }

  async deletePattern(pattern: string): Promise<number> {
    const keys = (await this.client.sendCommand(["KEYS", `cache:${pattern}`])) as string[];
    return keys.length ? ((await this.client.sendCommand(["DEL", ...keys])) as number) : 0;
  }
}

export class CacheManager {
  constructor(private readonly client: Client) {}

  wrap(fn: (...args: unknown[]) => Promise<unknown>): (...args: unknown[]) => Promise<unknown> {
    const cache = new CacheAside(this.client);
    return (...args) => cache.get(JSON.stringify(args), () => fn(...args));
  }
}
"""


def test_suite_catches_the_design_page_defects_in_typescript(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    from pathlib import PurePosixPath

    from templategen.engine import RenderedFile
    from templategen.options import ResolvedOptions
    from templategen.suite.runner import Target
    from templategen.suite.tstarget import build_typescript_driver

    options = default_options("cache-aside", "typescript")
    naive = RenderedFile(
        "cache-aside",
        "typescript",
        PurePosixPath("typescript/cacheAside.ts"),
        DESIGN_PAGE_CACHE_ASIDE,
        ResolvedOptions(values=options, given=frozenset()),
    )
    target = Target(
        pattern="cache-aside",
        language="typescript",
        label="design-page",
        command=build_typescript_driver(naive, tmp_path),
        options=options,
    )
    results = {
        r.scenario: r for r in run_target(target, load_scenarios("cache-aside"), redis_server.url)
    }
    assert results["invalidation_during_load_never_leaves_stale_value"].status == "failed"
    assert results["non_positive_ttl_is_refused"].status == "failed"
    assert results["miss_loads_once_then_hits"].status == "passed"
