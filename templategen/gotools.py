"""The Go toolchain as the generator uses it: ``gofmt`` for every rendered Go file.

Rendering Go needs ``gofmt`` (it ships with Go); the behaviour suite also needs ``go``
(``templategen/suite/gotarget.py``). A missing tool is a :class:`ToolMissingError`
(exit code 3) that says how to get it, never a skipped check.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from .errors import RenderedCodeError, ToolMissingError

__all__ = ["INSTALL_GO", "find_go_tool", "gofmt"]

INSTALL_GO = (
    "install Go 1.26 or newer from https://go.dev/dl (or your package manager, e.g. "
    "`apt-get install golang-go` where it is new enough) and put its bin directory on PATH"
)

_GOFMT_ERROR = re.compile(r"<standard input>:(\d+):(\d+): (.*)")


def find_go_tool(name: str, why: str) -> str:
    """The path of ``go`` or ``gofmt``; ToolMissingError saying ``why`` it is needed."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(f"{why} needs {name!r}, which is not on PATH: {INSTALL_GO}")
    return path


def _run_gofmt(tool: str, text: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([tool], input=text.encode("utf-8"), capture_output=True, check=False)


def gofmt(text: str, name: str) -> str:
    """``text`` formatted by gofmt, which must parse it and leave its output unchanged."""
    # Deferred import: formatting imports this module.
    from .formatting import numbered

    tool = find_go_tool("gofmt", "rendering Go")
    first = _run_gofmt(tool, text)
    if first.returncode != 0:
        errors = first.stderr.decode("utf-8", "replace").strip()
        match = _GOFMT_ERROR.search(errors)
        line = int(match.group(1)) if match else None
        raise RenderedCodeError(
            f"{name}: the rendered Go does not parse: {errors}\n" + numbered(text, line)
        )
    formatted = first.stdout.decode("utf-8")
    # gofmt -l on the result lists nothing: a second pass changes nothing.
    second = _run_gofmt(tool, formatted)
    if second.returncode != 0 or second.stdout.decode("utf-8") != formatted:
        raise RenderedCodeError(
            f"{name}: gofmt's output is not gofmt-clean (a second pass changes it)\n"
            + numbered(formatted)
        )
    return formatted
