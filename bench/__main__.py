"""``python -m bench``: run the benchmarks against a private redis-server and report.

Prints each measurement's tables as it finishes, then the targets, and writes
bench/RESULTS.md and bench/results.png (unless ``--no-write``). ``--only`` runs a
subset; ``--quick`` runs one short repetition of everything, for a smoke test.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from templategen.redis_server import RedisServer

from .context import Run, machine_context, uncommitted_code
from .implementations import Implementations
from .report import Section, results_markdown, section_markdown, targets_table

#: Measurement name -> its module in bench/ (imported when it runs).
MEASUREMENTS = {
    "roundtrips": "roundtrips",
    "throughput": "throughput",
    "stampede": "stampede",
    "refresh": "refresh",
    "write-behind": "write_behind",
    "tags": "tags",
    "generation": "generation",
    "typescript": "typescript_hits",
    "go": "go_hits",
}

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
PLOT = HERE / "results.png"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help=f"Comma-separated measurements to run (default: all): {', '.join(MEASUREMENTS)}.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="One short repetition of each: a smoke test."
    )
    parser.add_argument(
        "--reps", type=int, default=None, help="Repetitions per figure (default 5; quick: 1)."
    )
    parser.add_argument(
        "--no-write", action="store_true", help="Print only; leave RESULTS.md and the plot."
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="Where to write the results (default: %(default)s).",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = list(MEASUREMENTS) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in MEASUREMENTS]
    if unknown:
        print(f"unknown measurement(s): {', '.join(unknown)}; known: {', '.join(MEASUREMENTS)}")
        return 2
    reps = args.reps or (1 if args.quick else 5)
    if reps < 1:
        print("--reps must be at least 1")
        return 2
    started = time.time()
    uncommitted = uncommitted_code()
    workdir = Path(tempfile.mkdtemp(prefix="templategen-bench-"))
    sections: list[Section] = []
    try:
        with RedisServer() as server:
            impls = Implementations.load(workdir)
            run = Run(server, impls, workdir, reps, args.quick)
            for name in names:
                print(f"--- {name}", file=sys.stderr, flush=True)
                run.flush()
                t0 = time.perf_counter()
                measure: Callable[[Run], Section] = importlib.import_module(
                    f"bench.{MEASUREMENTS[name]}"
                ).measure
                section = measure(run)
                section.seconds = time.perf_counter() - t0
                sections.append(section)
                print(section_markdown(section), flush=True)
            context = machine_context(server, started, uncommitted)
            run.server_counts.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.time() - started
    print("## Targets\n\n" + targets_table(sections))
    print(f"\n{len(sections)} measurement(s) in {elapsed:.0f} s", file=sys.stderr)
    if not args.no_write:
        _write(args, sections, context, reps, elapsed, impls.missing)
    return 0


def _write(
    args: argparse.Namespace,
    sections: list[Section],
    context: list[tuple[str, str]],
    reps: int,
    elapsed: float,
    missing: dict[str, str],
) -> None:
    from .plot import plot

    out: Path = args.out
    png = out.with_name(PLOT.name) if out != RESULTS else PLOT
    drawn = plot(sections, png)
    command = "python -m bench" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    context = [
        *context,
        ("command", f"`{command}` ({elapsed:.0f} s, {reps} repetition(s) per figure)"),
        ("time per measurement", ", ".join(f"{s.key} {s.seconds:.0f} s" for s in sections)),
    ]
    preamble = (
        "Written by the command below; do not edit by hand. Every figure is a median "
        "of the repetitions with its min–max range, and every ratio or count is taken "
        "in the same run (and mostly the same repetition) as its comparison, so a "
        "noisy, shared machine moves both sides alike; absolute times are context only."
    )
    not_measured = [
        *_other_languages({s.key for s in sections}),
        *(f"Rendered Python of {p}: {why}" for p, why in sorted(missing.items())),
    ]
    out.write_text(
        results_markdown(sections, context, preamble, not_measured, png.name if drawn else None),
        encoding="utf-8",
    )
    print(f"wrote {out}" + (f" and {png}" if drawn else ""), file=sys.stderr)


def _other_languages(measured: set[str]) -> list[str]:
    """What this run left out of the rendered TypeScript and Go (--only, say)."""
    return [
        f"Rendered {name} against its own client: not run (`--only` without {key!r})."
        for key, name in (("typescript", "TypeScript"), ("go", "Go"))
        if key in MEASUREMENTS and key not in measured
    ]


if __name__ == "__main__":
    raise SystemExit(main())
