"""``templategen verify``: which implementations to check, which Redis, and the suite seam.

:func:`run` plays the behaviour suite (``templategen/suite``, docs/conformance.md) for
each rendered target through its language's driver, against the resolved Redis, and
returns one result per target. A verification that checked nothing never reads as a
pass: no scenarios, or no driver, is *skipped* with the reason.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from .engine import RenderedFile, render_many
from .errors import TemplategenError, ToolMissingError, UsageError
from .languages import get_language
from .redis_server import RedisServer, RedisServerError, find_redis_server
from .registry import Registry
from .suite.runner import ScenarioResult, run_target
from .suite.scenarios import load_scenarios
from .suite.targets import NoDriverError, rendered_target

__all__ = ["TargetResult", "VerifyReport", "redis_for_verify", "run", "select_targets"]

Status = Literal["passed", "failed", "skipped"]
_STATUSES: tuple[Status, ...] = ("passed", "failed", "skipped")


@dataclass(frozen=True, slots=True)
class TargetResult:
    pattern: str
    language: str
    status: Status
    message: str
    #: One entry per scenario: {"scenario", "status", "message"}.
    scenarios: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class VerifyReport:
    results: tuple[TargetResult, ...]

    @property
    def passed(self) -> bool:
        """True only when something passed and nothing failed."""
        statuses = [r.status for r in self.results]
        return "passed" in statuses and "failed" not in statuses

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "results": [asdict(r) for r in self.results]}


def select_targets(
    registry: Registry,
    patterns: Sequence[str],
    languages: Sequence[str],
    options: Mapping[str, object],
) -> list[RenderedFile]:
    """Render every (pattern, language) asked for; with none named, every one there is.

    A pattern named without a template for a named language is an error; when patterns
    are not named, patterns without that language are left out.
    """
    for name in languages:
        get_language(name)
    specs = [registry.get(name) for name in patterns] if patterns else registry.all()
    requests = []
    for spec in specs:
        wanted = list(languages) if languages else list(spec.languages)
        for language in wanted:
            if language not in spec.languages and not patterns:
                continue
            requests.append((spec.name, language, options))
    # One batch: the TypeScript and Express files share two node processes.
    targets = render_many(requests, registry=registry)
    if not targets:
        asked = f" in {', '.join(languages)}" if languages else ""
        raise UsageError(f"nothing to verify: no pattern has a template{asked} yet")
    return targets


@contextmanager
def redis_for_verify(url: str | None) -> Iterator[str]:
    """``url``, else $REDIS_URL, else a private redis-server for the duration."""
    url = url or os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    if find_redis_server() is None:
        raise ToolMissingError(
            "verify needs Redis: redis-server is not on PATH and no --redis-url or "
            "REDIS_URL was given; install it (Debian/Ubuntu: apt-get install redis-server; "
            "macOS: brew install redis) or point at a server you own with --redis-url"
        )
    try:
        server = RedisServer().start()
    except RedisServerError as exc:
        raise TemplategenError(f"could not start a private redis-server: {exc}") from None
    try:
        yield server.url
    finally:
        server.close()


def _summarize(target: RenderedFile, results: Sequence[ScenarioResult]) -> TargetResult:
    counts = {status: sum(r.status == status for r in results) for status in _STATUSES}
    failed = [r for r in results if r.status == "failed"]
    details = tuple(
        {"scenario": r.scenario, "status": r.status, "message": r.message} for r in results
    )
    if failed:
        first = failed[0]
        message = (
            f"{counts['failed']} of {len(results)} scenario(s) failed; "
            f"first: {first.scenario}: {first.message}"
        )
        return TargetResult(target.pattern, target.language, "failed", message, details)
    summary = f"{counts['passed']} scenario(s) passed, {counts['skipped']} skipped"
    if counts["passed"] == 0:
        reasons = sorted({r.message for r in results})
        return TargetResult(
            target.pattern,
            target.language,
            "skipped",
            f"every scenario was skipped: {'; '.join(reasons)}",
            details,
        )
    return TargetResult(target.pattern, target.language, "passed", summary, details)


def run(
    redis_url: str,
    targets: Sequence[RenderedFile],
    *,
    on_result: Callable[[RenderedFile, ScenarioResult], None] | None = None,
    registry: Registry | None = None,
) -> VerifyReport:
    """Play each target's behaviour scenarios against ``redis_url``, through its driver.

    A target passes only when at least one scenario ran and none failed; a language
    without a driver, or a pattern without scenarios, is *skipped* with the reason —
    never passed. ``on_result`` hears of every scenario as it finishes (progress).
    """
    report: list[TargetResult] = []
    with tempfile.TemporaryDirectory(prefix="templategen-verify-") as workdir:
        for target in targets:
            scenarios = load_scenarios(target.pattern, (registry or Registry()).root)
            if not scenarios:
                report.append(
                    TargetResult(
                        target.pattern,
                        target.language,
                        "skipped",
                        f"{target.pattern} has no behaviour scenarios yet",
                    )
                )
                continue
            try:
                suite_target = rendered_target(target, Path(workdir), target.language)
            except NoDriverError as exc:
                report.append(TargetResult(target.pattern, target.language, "skipped", str(exc)))
                continue

            def progress(result: ScenarioResult, target: RenderedFile = target) -> None:
                if on_result is not None:
                    on_result(target, result)

            results = run_target(suite_target, scenarios, redis_url, on_result=progress)
            report.append(_summarize(target, results))
    return VerifyReport(tuple(report))
