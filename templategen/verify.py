"""``templategen verify``: which implementations to check, which Redis, and the suite seam.

The behaviour suite (``templategen/suite``, docs/conformance.md) plugs in at :func:`run`:
it receives the resolved Redis URL and the rendered targets, and returns one result per
target. Until it does, :func:`run` fails every target and says why: a verification that
checked nothing must never read as a pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .engine import RenderedFile, render
from .errors import TemplategenError, ToolMissingError, UsageError
from .languages import get_language
from .redis_server import RedisServer, RedisServerError, find_redis_server
from .registry import Registry

__all__ = ["TargetResult", "VerifyReport", "redis_for_verify", "run", "select_targets"]

Status = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class TargetResult:
    pattern: str
    language: str
    status: Status
    message: str


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
    targets = []
    for spec in specs:
        wanted = list(languages) if languages else list(spec.languages)
        for language in wanted:
            if language not in spec.languages and not patterns:
                continue
            targets.append(render(spec.name, language, options, registry=registry))
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


def run(redis_url: str, targets: Sequence[RenderedFile]) -> VerifyReport:
    """Play each target's behaviour scenarios against ``redis_url``.

    The seam for the behaviour suite. For now no target can pass: each fails with the
    reason, so ``verify`` exits 1 instead of reporting a check that never ran.
    """
    del redis_url  # used once the suite is plugged in
    return VerifyReport(
        tuple(
            TargetResult(
                target.pattern,
                target.language,
                "failed",
                f"no behaviour scenarios for {target.pattern} ({target.language}) are run by "
                "verify yet",
            )
            for target in targets
        )
    )
