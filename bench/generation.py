"""7. Generation: rendering every pattern × language, in process and as one CLI call,
and a full ``templategen verify``.

*In process*: ``templategen.engine.render_all()``, first call (imports and formatter
start-up included) and warm calls after it. *CLI*: ``templategen render --all -o DIR``
as a fresh process, cold start included. *verify*: ``templategen verify`` with no
arguments, as a user runs it (it starts its own redis-server and every driver).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from templategen.engine import render, render_all

from .context import ROOT, Run
from .harness import Summary
from .report import Section, Table, Target

__all__ = ["measure"]

CLI = Path(sys.executable).with_name("templategen")
MAX_REPS = 3


def _cli(args: list[str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run([str(CLI), *args], cwd=ROOT, capture_output=True, text=True, check=False)
    tail = (done.stderr or done.stdout).strip().splitlines()
    return time.perf_counter() - started, done.returncode, tail[-1] if tail else ""


def measure(run: Run) -> Section:
    started = time.perf_counter()
    files = render_all()
    first = time.perf_counter() - started
    combos = sorted({(f.pattern, f.language) for f in files})
    per_language: dict[str, float] = {}
    for pattern, language in combos:
        started = time.perf_counter()
        render(pattern, language)
        per_language[language] = per_language.get(language, 0.0) + time.perf_counter() - started
    warm, cli, verify = [], [], []
    verify_codes: set[int] = set()
    verify_tail = ""
    # Capped: one verify takes half a minute, and the whole bench must stay a few minutes.
    reps = min(run.reps, MAX_REPS)
    for rep in range(reps):
        run.log(f"repetition {rep + 1}")
        started = time.perf_counter()
        render_all()
        warm.append(time.perf_counter() - started)
        with tempfile.TemporaryDirectory(prefix="bench-render-") as out:
            seconds, code, tail = _cli(["render", "--all", "-o", out])
            if code != 0:
                raise RuntimeError(f"templategen render --all failed ({code}): {tail}")
            cli.append(seconds)
        if not run.quick:
            seconds, code, verify_tail = _cli(["verify"])
            verify.append(seconds)
            verify_codes.add(code)
    languages = sorted({lang for _, lang in combos})
    section = Section(
        "generation",
        "7. Generation",
        f"{len(combos)} pattern × language renderings ({', '.join(languages)}); median "
        f"(min–max) of {reps} repetitions (capped at {MAX_REPS}: a verify takes about half "
        "a minute). Absolute times, as context; the ratio is the CLI's cost over the warm "
        "in-process render.",
    )
    table = Table("Generation", ["what", "time", "ratio"])
    warm_s = Summary.of(warm)
    table.add("render_all() in process, first call (once)", f"{first:.2f} s", "")
    for language, seconds in sorted(per_language.items()):
        table.add(f"  of which {language} (one render each, once)", f"{seconds:.2f} s", "")
    table.add("render_all() in process, warm", _ms(warm_s), "1.00×")
    cli_s = Summary.of(cli)
    table.add(
        "templategen render --all -o DIR (one process, cold start)",
        _ms(cli_s),
        Summary.of(c / w for c, w in zip(cli, warm, strict=True)).text("{:.1f}", "×"),
    )
    status = "passed" if verify_codes == {0} else f"exit {sorted(verify_codes)}: {verify_tail}"
    if verify:
        verify_s = Summary.of(verify)
        table.add(f"templategen verify (every pattern and language; {status})", _ms(verify_s), "")
        verified = f"verify {verify_s.median:.1f} s ({status})"
    else:
        verified = "verify not run in --quick"
    section.tables.append(table)
    section.targets.append(
        Target(
            "7. generation",
            "time every pattern × language render and a full templategen verify",
            f"{len(combos)} files: CLI {cli_s.median:.2f} s, in process (warm) "
            f"{warm_s.median:.2f} s; {verified}",
            None if not verify else verify_codes == {0},
        )
    )
    return section


def _ms(summary: Summary) -> str:
    return f"{summary.median:.2f} s ({summary.low:.2f}–{summary.high:.2f})"
