"""The runner's side of the driver protocol: a driver process spoken to in JSON lines.

One request per line on the driver's stdin, one response per line on its stdout, in
order; stderr is kept for diagnostics. See docs/conformance.md.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Any

__all__ = ["PROTOCOL_VERSION", "DriverError", "DriverProcess"]

PROTOCOL_VERSION = 1


class DriverError(RuntimeError):
    """The driver died, answered out of order, or did not answer in time."""


class DriverProcess:
    """A running driver; ``request`` sends one message and returns its response."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.command = list(command)
        self.timeout = timeout
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next_id = 0

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(b"")  # end of stream

    def stderr_tail(self, limit: int = 4000) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-limit:]

    def request(self, message: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
        self._next_id += 1
        payload = {"id": self._next_id, **message}
        line = json.dumps(payload, ensure_ascii=True, allow_nan=False) + "\n"
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(line.encode("ascii"))
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise DriverError(f"driver exited: {self.stderr_tail()}") from exc
        try:
            raw = self._lines.get(timeout=timeout or self.timeout)
        except queue.Empty:
            raise DriverError(
                f"driver did not answer {message.get('op')!r} within "
                f"{timeout or self.timeout}s; stderr: {self.stderr_tail()}"
            ) from None
        if not raw:
            raise DriverError(f"driver exited during {message.get('op')!r}: {self.stderr_tail()}")
        try:
            response = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DriverError(f"driver wrote a line that is not JSON: {raw[:200]!r}") from exc
        if not isinstance(response, dict) or response.get("id") != self._next_id:
            raise DriverError(f"driver answered out of order: {raw[:200]!r}")
        return response

    def close(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(DriverError):
                self.request({"op": "bye"}, timeout=5)
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()

    def __enter__(self) -> DriverProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
