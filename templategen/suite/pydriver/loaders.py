"""Loaders built from scenario specs, counted, and blockable at a named gate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["LoaderFailure", "Loaders"]


class LoaderFailure(Exception):
    """Raised by a loader whose spec says ``"error"``: the scenario's own failure."""


class Loaders:
    """Makes loaders; counts every call; gates (``"block": name``) hold them until released."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self._gates: dict[str, threading.Event] = {}
        #: Set whenever a loader starts waiting at a gate: lets an async op return once
        #: its loader is known to be in flight.
        self.entered = threading.Event()

    def reset(self) -> None:
        with self._lock:
            for gate in self._gates.values():
                gate.set()  # never leave a thread of the last scenario stuck
            self._gates = {}
            self.calls = 0
        self.entered.clear()

    def gate(self, name: str) -> threading.Event:
        with self._lock:
            return self._gates.setdefault(name, threading.Event())

    def release(self, name: str) -> None:
        self.gate(name).set()

    def make(self, spec: Mapping[str, Any] | None) -> Callable[..., Any]:
        spec = dict(spec or {})

        def loader(*_args: Any, **_kwargs: Any) -> Any:
            with self._lock:
                self.calls += 1
            if "block" in spec:
                gate = self.gate(str(spec["block"]))
                self.entered.set()
                if not gate.wait(timeout=30):
                    raise LoaderFailure(f"gate {spec['block']!r} was never released")
            if spec.get("delay_ms"):
                time.sleep(float(spec["delay_ms"]) / 1000)
            if "error" in spec:
                raise LoaderFailure(str(spec["error"]))
            return spec.get("value")

        return loader
