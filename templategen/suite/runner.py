"""Plays scenarios through a driver against a real Redis and checks every expectation.

The runner owns every judgement: a driver only performs operations and reports what
happened (values, errors, loader call counts). Redis-side checks (keys, TTLs) are made
here with redis-py, from the key layout of docs/wire-format.md, so a driver cannot pass
by agreeing with itself.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import redis

from .driver import PROTOCOL_VERSION, DriverError, DriverProcess
from .scenarios import RUNNER_OPS, Scenario

__all__ = ["ScenarioResult", "Target", "run_target"]

Status = Literal["passed", "failed", "skipped"]

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class Target:
    """One implementation under test: a driver command and the options it was built with."""

    pattern: str
    language: str
    label: str
    command: Sequence[str]
    options: Mapping[str, Any]
    env: Mapping[str, str] | None = None
    cwd: str | None = None


@dataclass
class ScenarioResult:
    target: str
    scenario: str
    status: Status
    message: str = ""
    steps_run: int = 0
    detail: list[str] = field(default_factory=list)


class StepFailed(AssertionError):
    pass


def substitute(value: Any, options: Mapping[str, Any]) -> Any:
    """Replace ``{{option}}`` in every string of ``value`` with that option's value."""
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in options:
                raise StepFailed(f"scenario refers to unknown option {{{{{name}}}}}")
            return str(options[name])

        return _PLACEHOLDER.sub(repl, value)
    if isinstance(value, list):
        return [substitute(v, options) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, options) for k, v in value.items()}
    return value


def same(a: Any, b: Any) -> bool:
    """JSON equality that keeps true apart from 1 and 1 apart from "1"."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, list | tuple | set):
        items = [_decode(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set) else items
    return value


def _missing_fields(value: Any, fields: Mapping[str, Any], path: str) -> str | None:
    """Why ``value`` does not hold ``fields`` (``expect.fields``), or None when it does.

    Only the named fields are checked; a nested object is matched the same way, and
    null means "absent" (a driver's object never needs null: it leaves the field out).
    """
    if not isinstance(value, dict):
        return f"expected an object at {path}, got {value!r}"
    for name, wanted in fields.items():
        where = f"{path}.{name}"
        if wanted is None:
            if value.get(name) is not None:
                return f"expected {where} to be absent, got {value[name]!r}"
        elif name not in value:
            return f"expected {where} = {wanted!r}, but it is absent in {value!r}"
        elif isinstance(wanted, dict):
            problem = _missing_fields(value[name], wanted, where)
            if problem:
                return problem
        elif not same(value[name], wanted):
            return f"expected {where} = {wanted!r}, got {value[name]!r}"
    return None


def _check(where: str, expect: Mapping[str, Any], response: Mapping[str, Any]) -> None:
    ok = bool(response.get("ok"))
    if "error" in expect:
        err = response.get("error") or {}
        if ok or err.get("kind") != expect["error"]:
            raise StepFailed(
                f"{where}: expected error {expect['error']!r}, got "
                + (f"value {response.get('value')!r}" if ok else f"error {err!r}")
            )
    elif not ok:
        raise StepFailed(f"{where}: unexpected error {response.get('error')!r}")
    value = response.get("value")
    if "value" in expect and not same(value, expect["value"]):
        raise StepFailed(f"{where}: expected value {expect['value']!r}, got {value!r}")
    if "result" in expect and not same(value, expect["result"]):
        raise StepFailed(f"{where}: expected result {expect['result']!r}, got {value!r}")
    if "all" in expect:
        values = value if isinstance(value, list) else None
        if values is None or not values or not all(same(v, expect["all"]) for v in values):
            raise StepFailed(f"{where}: expected every caller to get {expect['all']!r}: {value!r}")
    if "between" in expect:
        lo, hi = expect["between"]
        if not isinstance(value, int | float) or isinstance(value, bool) or not lo <= value <= hi:
            raise StepFailed(f"{where}: expected a number in [{lo}, {hi}], got {value!r}")
    if "contains" in expect:
        if not isinstance(value, list):
            raise StepFailed(f"{where}: expected a list containing {expect['contains']!r}")
        missing = [x for x in expect["contains"] if not any(same(x, v) for v in value)]
        if missing:
            raise StepFailed(f"{where}: {missing!r} missing from {value!r}")
    if "fields" in expect:
        problem = _missing_fields(value, expect["fields"], "value")
        if problem:
            raise StepFailed(f"{where}: {problem}")
    if "loader_calls" in expect and response.get("loader_calls") != expect["loader_calls"]:
        raise StepFailed(
            f"{where}: expected {expect['loader_calls']} loader call(s) so far, "
            f"driver counted {response.get('loader_calls')!r}"
        )


def _play(
    driver: DriverProcess, client: redis.Redis, scenario: Scenario, options: Mapping[str, Any]
) -> int:
    for i, raw in enumerate(scenario.steps):
        step = substitute(dict(raw), options)
        op = step["op"]
        where = f"step {i} ({op})"
        expect = step.get("expect", {})
        if op == "sleep":
            time.sleep(step["ms"] / 1000)
            continue
        if op == "redis":
            try:
                reply = client.execute_command(*step["command"])  # type: ignore[no-untyped-call]
                value = _decode(reply)
                response: dict[str, Any] = {"ok": True, "value": value}
            except redis.ResponseError as exc:
                response = {"ok": False, "error": {"kind": "redis", "message": str(exc)}}
            _check(where, expect, response)
            continue
        assert op not in RUNNER_OPS
        message = {k: v for k, v in step.items() if k not in ("expect", "doc")}
        _check(where, expect, driver.request(message))
    return len(scenario.steps)


def _skip_reason(scenario: Scenario, options: Mapping[str, Any]) -> str | None:
    for name, wanted in scenario.requires.items():
        if not same(options.get(name), wanted):
            return f"needs option {name}={wanted!r} (target has {options.get(name)!r})"
    return None


def run_target(
    target: Target,
    scenarios: Iterable[Scenario],
    redis_url: str,
    *,
    on_result: Callable[[ScenarioResult], None] | None = None,
) -> list[ScenarioResult]:
    """Run ``scenarios`` through one driver process; Redis is flushed before each."""
    results: list[ScenarioResult] = []
    client = redis.Redis.from_url(redis_url)
    # Raw replies: the runner checks what Redis said ("OK", integers, bytes), not what a
    # client library makes of it.
    client.response_callbacks.clear()

    def record(result: ScenarioResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    todo = list(scenarios)
    try:
        driver = DriverProcess(target.command, env=target.env, cwd=target.cwd)
    except OSError as exc:
        for sc in todo:
            record(ScenarioResult(target.label, sc.name, "failed", f"driver did not start: {exc}"))
        return results
    with driver:
        try:
            hello = driver.request({"op": "hello", "protocol": PROTOCOL_VERSION})
            if not hello.get("ok"):
                raise DriverError(f"hello refused: {hello.get('error')!r}")
            setup = driver.request(
                {
                    "op": "configure",
                    "pattern": target.pattern,
                    "options": dict(target.options),
                    "redis_url": redis_url,
                }
            )
            if not setup.get("ok"):
                raise DriverError(f"configure refused: {setup.get('error')!r}")
        except DriverError as exc:
            for sc in todo:
                record(ScenarioResult(target.label, sc.name, "failed", str(exc)))
            return results
        for sc in todo:
            reason = _skip_reason(sc, target.options)
            if reason:
                record(ScenarioResult(target.label, sc.name, "skipped", reason))
                continue
            client.flushall()
            try:
                reset = driver.request({"op": "reset"})
                if not reset.get("ok"):
                    raise StepFailed(f"reset refused: {reset.get('error')!r}")
                steps = _play(driver, client, sc, target.options)
                record(ScenarioResult(target.label, sc.name, "passed", steps_run=steps))
            except (StepFailed, DriverError) as exc:
                record(ScenarioResult(target.label, sc.name, "failed", str(exc)))
                if isinstance(exc, DriverError):
                    # The driver is gone or confused; later scenarios cannot be trusted.
                    for rest in todo[todo.index(sc) + 1 :]:
                        record(ScenarioResult(target.label, rest.name, "failed", "driver lost"))
                    break
    client.close()
    return results
