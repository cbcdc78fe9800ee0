"""Helpers the pattern tests share: command counting, waiting, threads, rendered modules."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import redis

from templategen.engine import render


class CountingRedis(redis.Redis):
    """A real client that records the name of every command it sends (not pub/sub).

    Each entry is one round trip: the patterns send no pipelines.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[str] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]).upper())
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the server started, from INFO commandstats."""
    return {
        name.removeprefix("cmdstat_"): int(stats["calls"])
        for name, stats in client.info("commandstats").items()
    }


def calls_during(client: redis.Redis, action: Callable[[], object]) -> dict[str, int]:
    """The commands the server ran while ``action`` ran, by any client: name -> count."""
    before = command_calls(client)
    action()
    after = command_calls(client)
    return {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name)}


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def run_threads(targets: Iterable[Callable[[], object]], timeout: float = 30.0) -> None:
    """Run each target on a thread of its own, wait for all, re-raise the first error.

    An exception in a plain thread is only printed; here it fails the test. A target
    that others wait on must tell them to stop in a ``finally``, or a failure in it
    leaves them running until ``timeout``.
    """
    errors: list[BaseException] = []

    def guarded(target: Callable[[], object]) -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if errors:
        raise errors[0]
    assert not any(thread.is_alive() for thread in threads), f"still running after {timeout}s"


def import_rendered(pattern: str, options: dict[str, Any], directory: Path) -> ModuleType:
    """Render ``pattern`` in Python with ``options`` into ``directory`` and import it."""
    rendered = render(pattern, "python", options)
    path = directory / rendered.path.name
    path.write_text(rendered.text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"rendered_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module
