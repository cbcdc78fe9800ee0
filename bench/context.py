"""The run's shared state: the private Redis, the implementations, repetitions, and context."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import redis
from templategen.redis_server import RedisServer

from .harness import ServerCounts
from .implementations import Implementations

__all__ = ["Run", "machine_context", "uncommitted_code"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    """Everything a measurement needs: the server, the code under test, how hard to try."""

    server: RedisServer
    impls: Implementations
    workdir: Path
    reps: int
    quick: bool
    server_counts: ServerCounts = field(init=False)

    def __post_init__(self) -> None:
        self.server_counts = ServerCounts(self.server.unix_socket)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, **kwargs: object) -> redis.Redis:
        """A plain bytes client over TCP (the harness's own connection is the unix socket)."""
        return redis.Redis.from_url(self.url, **kwargs)  # type: ignore[arg-type]

    def flush(self) -> None:
        self.server_counts.client.flushall()

    def log(self, message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head


def uncommitted_code() -> str:
    """The code under test that differs from the commit: ``none``, or the files.

    Taken when the run starts (the implementations are imported then); the checkout is
    shared, so work in progress of others is measured too and must be named.
    """
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "reference", "templates", "templategen"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    files = [line[3:] for line in status]
    return ", ".join(files) if files else "none"


def machine_context(server: RedisServer, started: float, uncommitted: str) -> list[tuple[str, str]]:
    redis_version = subprocess.run(
        [server.executable, "--version"], capture_output=True, text=True
    ).stdout.split()
    server_version = next((w.split("=", 1)[1] for w in redis_version if w.startswith("v=")), "?")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        ("date (UTC)", time.strftime("%Y-%m-%d %H:%M", time.gmtime(started))),
        (
            "machine",
            f"{_cpu_model()}, {os.cpu_count()} cores, {_memory()}, "
            f"{platform.system()} {platform.release()}",
        ),
        ("load average at the end (1, 5, 15 min)", load),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("redis-server", f"{server_version} (private, loopback TCP, no persistence)"),
        ("redis-py", _version("redis")),
        ("hiredis", _version("hiredis")),
        ("templategen", f"{_version('templategen')} at commit {_git_commit()}"),
        ("uncommitted changes in the code under test, at the start", uncommitted),
        (
            "dogpile.cache / cashews / aiocache",
            " / ".join(_version(d) for d in ("dogpile.cache", "cashews", "aiocache")),
        ),
        ("matplotlib", _version("matplotlib")),
    ]
