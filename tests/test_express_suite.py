"""The behaviour suite against the rendered Express output: the same scenarios, the same
runner, through the TypeScript driver started with ``--language express``.

Targets per pattern that has an Express template and scenarios: the defaults, and every
named option set of its scenarios.json. Express targets carry ``language: express``, so
the scenarios of the Express response cache (``"requires": {"language": "express"}``)
run here and are skipped for every other language. One driver process plays all
scenarios of a target; each scenario is its own test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from templategen.engine import RenderedFile, render
from templategen.options import ResolvedOptions
from templategen.redis_server import RedisServer
from templategen.registry import Registry
from templategen.suite import targets
from templategen.suite.runner import ScenarioResult, Target, run_target
from templategen.suite.scenarios import load_scenarios
from templategen.suite.targets import default_options, option_sets, rendered_target
from templategen.suite.tstarget import build_express_driver, has_express_adapter

REGISTRY = Registry()
PATTERNS = [
    p for p in REGISTRY.names() if "express" in REGISTRY.get(p).languages and load_scenarios(p)
]


def given_options(pattern: str, set_name: str) -> dict[str, Any]:
    return targets.given_options(pattern, "express", set_name)


CASES = [
    pytest.param(pattern, set_name, sc.name, id=f"{pattern}-express[{set_name}]-{sc.name}")
    for pattern in PATTERNS
    for set_name in option_sets(pattern, "express")
    for sc in load_scenarios(pattern)
]

Lookup = Callable[[str, str, str], ScenarioResult]


def test_every_express_pattern_with_scenarios_has_an_adapter() -> None:
    assert {"http-cache-headers", "cache-aside"} <= set(PATTERNS)
    assert [p for p in PATTERNS if not has_express_adapter(p)] == []


def test_express_only_scenarios_exist_and_require_express() -> None:
    only = [sc for sc in load_scenarios("cache-aside") if sc.requires.get("language")]
    assert len(only) >= 10
    assert {sc.requires["language"] for sc in only} == {"express"}
    assert all(sc.name.startswith("express_") for sc in only)


@pytest.fixture(scope="module")
def suite_results(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lookup]:
    workdir = tmp_path_factory.mktemp("express-suite")
    cache: dict[tuple[str, str, str], ScenarioResult] = {}

    def result(pattern: str, set_name: str, scenario: str) -> ScenarioResult:
        if (pattern, set_name, scenario) not in cache:
            rendered = render(pattern, "express", given_options(pattern, set_name))
            label = f"express[{set_name}]"
            target = rendered_target(rendered, workdir / pattern / set_name, label)
            for r in run_target(target, load_scenarios(pattern), redis_server.url):
                cache[(pattern, set_name, r.scenario)] = r
        return cache[(pattern, set_name, scenario)]

    yield result


@pytest.mark.parametrize(("pattern", "set_name", "scenario"), CASES)
def test_rendered_express_behaves_as_the_scenario_says(
    suite_results: Lookup, pattern: str, set_name: str, scenario: str
) -> None:
    result = suite_results(pattern, set_name, scenario)
    if result.status == "skipped":
        pytest.skip(result.message)
    assert result.status == "passed", result.message


def test_verify_runs_typescript_and_express(redis_server: RedisServer) -> None:
    """`templategen verify -l typescript -l express` for the two patterns, as the CLI does."""
    from templategen.verify import run, select_targets

    patterns = ["http-cache-headers", "cache-aside"]
    targets = select_targets(REGISTRY, patterns, ["typescript", "express"], {})
    report = run(redis_server.url, targets)
    assert report.passed, report.to_json()
    by_target = {(r.pattern, r.language): r for r in report.results}
    assert set(by_target) == {(p, lang) for p in patterns for lang in ("typescript", "express")}
    express_only = [
        s
        for s in by_target[("cache-aside", "typescript")].scenarios
        if s["scenario"].startswith("express_")
    ]
    assert express_only
    assert {s["status"] for s in express_only} == {"skipped"}
    assert {
        s["status"]
        for s in by_target[("cache-aside", "express")].scenarios
        if s["scenario"].startswith("express_")
    } <= {"passed", "skipped"}


# --- the suite catches what the design page gets wrong --------------------------------------

#: The design page's Express route, as the adapter sees it: If-None-Match compared with
#: `===`, 304 without its cache headers. (Helpers the adapter calls are the minimum.)
DESIGN_PAGE_HTTP = """
"use strict";
const { createHash } = require("node:crypto");

const etagOf = (body) =>
  '"' + createHash("sha256").update(body).digest().subarray(0, 16).toString("base64url") + '"';
const policy = (cacheControl, vary) => ({ cacheControl, vary });

class CacheHeadersMiddleware {
  constructor(policyFor) {
    this.handler = (req, res, next) => {
      const chosen = policyFor(req);
      if (!chosen || (req.method !== "GET" && req.method !== "HEAD")) return next();
      const end = res.end;
      res.end = (body) => {
        const etag = etagOf(body ?? "");
        if (req.headers["if-none-match"] === etag) {
          res.statusCode = 304;
          return end.call(res);
        }
        res.setHeader("Cache-Control", chosen.cacheControl);
        if (chosen.vary) res.setHeader("Vary", chosen.vary);
        res.setHeader("ETag", etag);
        return end.call(res, body);
      };
      next();
    };
  }
}

module.exports = {
  CacheHeadersMiddleware,
  staticAssets: () => policy("public, max-age=31536000, immutable"),
  publicApi: () => policy("public, max-age=300, stale-while-revalidate=60", "Accept-Encoding"),
  privateUserData: () => policy("private, no-cache, must-revalidate"),
  cdnCatalog: () => policy("public, s-maxage=600, max-age=300"),
};
"""

#: A textbook response cache: every GET's response stored by URL, no lease, nothing
#: checked. The cache and manager classes are there only to be constructed.
NAIVE_RESPONSE_CACHE = """
"use strict";
class CacheAside {
  constructor(client) { this.client = client; }
}
class CacheManager {
  constructor(client) { this.client = client; }
  cacheResponses() {
    const client = this.client;
    const middleware = async (req, res, next) => {
      if (req.method !== "GET") return next();
      const key = "cache:" + req.originalUrl;
      const hit = await client.sendCommand(["GET", key]);
      if (hit) {
        const { status, body } = JSON.parse(hit);
        res.statusCode = status;
        return res.end(body);
      }
      const end = res.end;
      res.end = (body) => {
        const entry = JSON.stringify({ status: res.statusCode, body: String(body) });
        client.sendCommand(["SET", key, entry, "EX", "3600"]);
        return end.call(res, body);
      };
      next();
    };
    middleware.invalidate = async (path) =>
      Number(await client.sendCommand(["DEL", "cache:" + path]));
    return middleware;
  }
}
module.exports = { CacheAside, CacheManager };
"""


def _naive_results(
    pattern: str, text: str, redis_server: RedisServer, tmp_path: Path
) -> dict[str, ScenarioResult]:
    options = default_options(pattern, "express")
    naive = RenderedFile(
        pattern,
        "express",
        PurePosixPath(f"express/{pattern}.js"),
        text,
        ResolvedOptions(values=options, given=frozenset()),
    )
    target = Target(
        pattern=pattern,
        language="express",
        label="design-page",
        command=build_express_driver(naive, tmp_path),
        options={**options, "language": "express"},
    )
    results = run_target(target, load_scenarios(pattern), redis_server.url)
    return {r.scenario: r for r in results}


def test_suite_catches_the_design_pages_if_none_match_comparison(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    results = _naive_results("http-cache-headers", DESIGN_PAGE_HTTP, redis_server, tmp_path)
    assert results["matching_member_of_an_if_none_match_list_gets_304"].status == "failed"
    assert results["weak_if_none_match_matches_the_generated_etag"].status == "failed"
    assert results["if_none_match_star_gets_304"].status == "failed"
    assert results["mismatching_if_none_match_gets_the_full_200"].status == "passed"


def test_suite_catches_a_textbook_response_cache(redis_server: RedisServer, tmp_path: Path) -> None:
    results = _naive_results("cache-aside", NAIVE_RESPONSE_CACHE, redis_server, tmp_path)
    assert results["express_private_and_personal_responses_are_never_stored"].status == "failed"
    assert results["express_only_200_responses_are_stored"].status == "failed"
    assert results["express_query_order_does_not_make_another_entry"].status == "failed"
    stale = "express_invalidation_during_a_request_never_leaves_a_stale_response"
    assert results[stale].status == "failed"
    assert results["express_requests_with_authorization_bypass_the_cache"].status == "failed"
