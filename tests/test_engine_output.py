"""Writing rendered files: all or nothing, never over someone's changes; output/ is current."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from templategen import output
from templategen.engine import RenderedFile, render_all
from templategen.errors import OutputDriftError, OutputPathError
from templategen.options import ResolvedOptions

REPO = Path(__file__).parent.parent


def rendered(path: str, text: str) -> RenderedFile:
    options = ResolvedOptions(values={}, given=frozenset())
    return RenderedFile("demo", path.split("/")[0], PurePosixPath(path), text, options)


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_a_failure_while_writing_leaves_no_file_behind(tmp_path):
    (tmp_path / "go").write_text("a file where a directory must go\n")
    files = [rendered("python/a.py", "A = 1\n"), rendered("go/x/b.go", "package x\n")]
    with pytest.raises(OutputPathError, match=f"cannot write to {tmp_path}"):
        output.write(output.plan(files, tmp_path), tmp_path, force=False)
    assert files_under(tmp_path) == ["go"]


def test_a_changed_file_blocks_every_write_without_force(tmp_path):
    (tmp_path / "python").mkdir()
    (tmp_path / "python" / "a.py").write_text("edited\n")
    files = [rendered("python/a.py", "A = 1\n"), rendered("python/b.py", "B = 1\n")]
    planned = output.plan(files, tmp_path)
    assert [p.action for p in planned] == ["overwrite", "create"]
    with pytest.raises(OutputDriftError, match="1 file\\(s\\) differ"):
        output.write(planned, tmp_path, force=False)
    assert files_under(tmp_path) == ["python", "python/a.py"]
    output.write(planned, tmp_path, force=True)
    assert (tmp_path / "python" / "a.py").read_text() == "A = 1\n"
    assert (tmp_path / "python" / "b.py").read_text() == "B = 1\n"


def test_written_files_keep_their_newlines_and_no_temporaries(tmp_path):
    output.write(
        output.plan([rendered("python/a.py", "A = 'é'\n")], tmp_path), tmp_path, force=False
    )
    assert (tmp_path / "python" / "a.py").read_bytes() == "A = 'é'\n".encode()
    assert files_under(tmp_path) == ["python", "python/a.py"]


def test_committed_output_matches_a_fresh_render():
    """output/ is `templategen render --all -o output`; rerun that after changing templates."""
    stale = [
        str(p.target.relative_to(REPO))
        for p in output.plan(render_all(), REPO / "output")
        if p.action != "unchanged"
    ]
    assert stale == [], "run: templategen render --all -o output --force"
