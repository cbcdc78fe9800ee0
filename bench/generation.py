"""7. Generation: rendering every pattern × language, in process and as one CLI call,
and a full ``templategen verify``.

*In process*: ``templategen.engine.render_all`` once warm (imports and each formatter's
first start done before), which checks the TypeScript and Express files in one batch,
and then each language's files on their own (``render_all(languages=[...])``). *CLI*:
``templategen render --all -o DIR`` as a fresh process, cold start included.
*verify*: ``templategen verify`` with no arguments, as a user runs it (it starts its
own redis-server and every driver).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from templategen.engine import render, render_all
from templategen.registry import Registry

from .context import ROOT, Run
from .harness import Summary
from .report import Section, Table, Target

__all__ = ["measure"]

CLI = Path(sys.executable).with_name("templategen")
RENDER_REPS = 3
VERIFY_REPS = 1


def _cli(args: list[str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run([str(CLI), *args], cwd=ROOT, capture_output=True, text=True, check=False)
    tail = (done.stderr or done.stdout).strip().splitlines()
    return time.perf_counter() - started, done.returncode, tail[-1] if tail else ""


def measure(run: Run) -> Section:
    registry_files = render_all_combinations()
    # Warm-up: imports and each formatter's first start happen here, not below.
    for language in sorted({lang for _, lang in registry_files}):
        render(next(p for p, lang in registry_files if lang == language), language)
    # In process, warm: everything as one batch (what render --all does), then each
    # language's files as a batch of their own, which says where the time goes.
    render_reps = min(run.reps, RENDER_REPS)
    in_process_runs = []
    for _ in range(render_reps):
        started = time.perf_counter()
        render_all()
        in_process_runs.append(time.perf_counter() - started)
    in_process = statistics.median(in_process_runs)
    per_language: dict[str, float] = {}
    for language in sorted({lang for _, lang in registry_files}):
        started = time.perf_counter()
        render_all(languages=[language])
        per_language[language] = time.perf_counter() - started
    cli, verify = [], []
    verify_codes: set[int] = set()
    verify_tail = ""
    # Capped (render_reps above): a render --all takes seconds and a verify a minute,
    # and the whole bench must stay short.
    for rep in range(render_reps):
        run.log(f"render, repetition {rep + 1}")
        with tempfile.TemporaryDirectory(prefix="bench-render-") as out:
            seconds, code, tail = _cli(["render", "--all", "-o", out])
            if code != 0:
                raise RuntimeError(f"templategen render --all failed ({code}): {tail}")
            cli.append(seconds)
    if not run.quick:
        for rep in range(VERIFY_REPS):
            run.log(f"verify, repetition {rep + 1}")
            seconds, code, verify_tail = _cli(["verify"])
            verify.append(seconds)
            verify_codes.add(code)
    languages = sorted(per_language)
    section = Section(
        "generation",
        "7. Generation",
        f"{len(registry_files)} pattern × language renderings ({', '.join(languages)}). "
        "Absolute times, as context. Repetitions are capped to keep the run short: the "
        f"in-process and the CLI render {render_reps} each (median (min–max)), each "
        f"language alone and verify {VERIFY_REPS}. The ratio is the CLI's time over the "
        "in-process render.",
    )
    table = Table("Generation", ["what", "time", "ratio"])
    table.add(
        "in process (engine.render_all, warm), every file",
        _ms(Summary.of(in_process_runs)),
        "1.00×",
    )
    for language, seconds in sorted(per_language.items()):
        count = sum(1 for _, lang in registry_files if lang == language)
        table.add(f"  {language} alone ({count} files)", f"{seconds:.2f} s", "")
    cli_s = Summary.of(cli)
    table.add(
        "templategen render --all -o DIR (one process, cold start)",
        _ms(cli_s),
        f"{cli_s.median / in_process:.2f}×",
    )
    status = "passed" if verify_codes == {0} else f"exit {sorted(verify_codes)}: {verify_tail}"
    if verify:
        verify_s = Summary.of(verify)
        table.add(f"templategen verify (every pattern and language; {status})", _ms(verify_s), "")
        verified = f"verify {verify_s.median:.1f} s ({status})"
    else:
        verified = "verify not run in --quick"
    table.notes.append(
        "TypeScript and Express files are formatted by one prettier run and type-checked "
        "by one tsc --build per batch (templategen/formatting.py); Python files by black "
        "in its safe mode (it re-parses and compares the AST), one file at a time."
    )
    section.tables.append(table)
    section.targets.append(
        Target(
            "7. generation",
            "time every pattern × language render and a full templategen verify",
            f"{len(registry_files)} files: CLI {cli_s.median:.1f} s, in process "
            f"{in_process:.1f} s; {verified}",
            None if not verify else verify_codes == {0},
        )
    )
    return section


def render_all_combinations() -> list[tuple[str, str]]:
    """Every (pattern, language) that render_all renders."""
    registry = Registry()
    return [(spec.name, language) for spec in registry.all() for language in spec.languages]


def _ms(summary: Summary) -> str:
    return f"{summary.median:.2f} s ({summary.low:.2f}–{summary.high:.2f})"
