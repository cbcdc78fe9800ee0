"""Writing rendered files under an output directory: all of them, or none.

Files are compared with what is already there first. A file that would change is only
overwritten with ``force``; otherwise nothing at all is written (the directory has
drifted from the templates, or holds someone's edits). Writing stages every file as a
temporary beside its target and renames only when all were staged, so an error leaves
no half-written or missing files behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .engine import RenderedFile
from .errors import OutputDriftError, OutputPathError

__all__ = ["PlannedFile", "plan", "write"]

Action = Literal["create", "overwrite", "unchanged"]


@dataclass(frozen=True, slots=True)
class PlannedFile:
    target: Path
    text: str
    action: Action


def _fail(out_dir: Path, exc: OSError) -> OutputPathError:
    reason = exc.strerror or str(exc)
    where = f" ({exc.filename})" if exc.filename else ""
    return OutputPathError(f"cannot write to {out_dir}: {reason}{where}")


def plan(files: Iterable[RenderedFile], out_dir: Path) -> list[PlannedFile]:
    """What writing ``files`` under ``out_dir`` would do to each target."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputPathError(f"cannot write to {out_dir}: it exists and is not a directory")
    planned = []
    for file in files:
        target = out_dir.joinpath(*file.path.parts)
        try:
            current = target.read_bytes() if target.exists() else None
        except OSError as exc:
            raise _fail(out_dir, exc) from None
        if current is None:
            action: Action = "create"
        elif current == file.text.encode("utf-8"):
            action = "unchanged"
        else:
            action = "overwrite"
        planned.append(PlannedFile(target, file.text, action))
    return planned


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write(planned: Sequence[PlannedFile], out_dir: Path, *, force: bool) -> None:
    """Write every created or changed file; without ``force`` a change writes nothing."""
    changed = [p for p in planned if p.action == "overwrite"]
    if changed and not force:
        names = ", ".join(str(p.target) for p in changed)
        raise OutputDriftError(
            f"{len(changed)} file(s) differ from the rendered output: {names}; nothing was "
            "written (use --force to overwrite, or --dry-run to see what would change)"
        )
    todo = [p for p in planned if p.action != "unchanged"]
    made_dirs: list[Path] = []
    staged: list[tuple[str, Path]] = []
    mode = 0o666 & ~_umask()
    try:
        for p in todo:
            for parent in reversed(p.target.parents):
                if not parent.exists():
                    parent.mkdir()
                    made_dirs.append(parent)
            fd, tmp = tempfile.mkstemp(dir=p.target.parent, prefix=f".{p.target.name}.")
            staged.append((tmp, p.target))
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(p.text)
            os.chmod(tmp, mode)
        for tmp, target in staged:
            os.replace(tmp, target)
    except OSError as exc:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        for made in reversed(made_dirs):
            with contextlib.suppress(OSError):
                made.rmdir()
        raise _fail(out_dir, exc) from None
