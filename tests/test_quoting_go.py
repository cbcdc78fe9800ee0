"""Go literals compiled and run by real ``go``: each prints exactly the input's bytes, and
the ``str`` filter writes what ``strconv.QuoteToASCII`` writes. One ``go run`` per batch."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from templategen.reference import _lease
from test_quoting import HOSTILE_PARTS, texts

from templategen.errors import QuotingError
from templategen.quoting import FILTERS, TrustedText

go_str = FILTERS["go"]["str"]
go_script = FILTERS["go"]["script"]

pytestmark = pytest.mark.slow


def go_run(literals: list[str]) -> list[tuple[str, str]]:
    """Each literal's bytes as hex, and strconv.QuoteToASCII of the value, from real Go."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("go is not on PATH; these tests need a real Go toolchain (https://go.dev/dl)")
    program = (
        "package main\n\n"
        'import (\n\t"fmt"\n\t"strconv"\n)\n\n'
        "var xs = []string{\n" + "".join(f"\t{lit},\n" for lit in literals) + "}\n\n"
        "func main() {\n"
        "\tfor _, s := range xs {\n"
        '\t\tfmt.Printf("%x\\t%s\\n", s, strconv.QuoteToASCII(s))\n'
        "\t}\n}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "main.go"
        source.write_text(program, encoding="utf-8")
        env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
        out = subprocess.run(
            [go, "run", str(source)], capture_output=True, text=True, env=env, cwd=tmp
        )
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    return [(hex_, quoted) for hex_, quoted in rows]


LUA = TrustedText(_lease.READ_OR_LEASE_LUA)


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(texts, min_size=150, max_size=150))
def test_go_literals_run_by_go_print_exactly_the_input_bytes(cases):
    # One go build per example: the hostile fragments and the Lua script (as a raw
    # string) ride along in every batch.
    cases = [*HOSTILE_PARTS, "".join(HOSTILE_PARTS), "", *cases]
    rows = go_run([*(go_str(c) for c in cases), go_script(LUA)])
    assert [hex_ for hex_, _ in rows] == [c.encode("utf-8").hex() for c in [*cases, LUA]]
    # Byte for byte what strconv.QuoteToASCII writes for the same text.
    assert [quoted for _, quoted in rows[:-1]] == [go_str(c) for c in cases]


def test_go_refuses_lone_surrogates():
    with pytest.raises(QuotingError, match="lone surrogate"):
        go_str("a\ud800")
