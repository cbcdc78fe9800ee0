"""The command line: one click group, one function per command, no logic of its own.

Every command calls the engine and turns :class:`TemplategenError` into a message on
stderr and the error's exit code (0 ok, 1 failed or drifted, 2 usage, 3 tool missing).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import click

from . import __version__, output, verify
from .engine import RenderedFile, render_all, render_many
from .errors import TemplateBugError, TemplategenError
from .languages import LANGUAGES
from .registry import Registry
from .suite.runner import ScenarioResult

__all__ = ["cli", "main"]


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TemplategenError as exc:
            click.echo(f"templategen: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


pass_registry = click.make_pass_decorator(Registry)


def _parse_sets(settings: Sequence[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in settings:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--set")
        if name in options:
            raise click.BadParameter(f"{name} is given twice", param_hint="--set")
        options[name] = value
    return options


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="templategen")
@click.option(
    "--templates-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    hidden=True,
    help="Read patterns from this folder instead of the installed templates.",
)
@click.pass_context
def cli(ctx: click.Context, templates_dir: Path | None) -> None:
    """Render Redis caching patterns as code you can read, keep and verify."""
    ctx.obj = Registry(templates_dir)


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_registry
def list_(registry: Registry, as_json: bool) -> None:
    """List the patterns and the languages each can be rendered in."""
    specs = registry.all()
    if as_json:
        _echo_json(
            {
                "languages": list(LANGUAGES),
                "patterns": [
                    {"name": s.name, "summary": s.summary, "languages": list(s.languages)}
                    for s in specs
                ],
            }
        )
        return
    width = max([len("pattern"), *(len(s.name) for s in specs)]) + 2
    click.echo("pattern".ljust(width) + "  ".join(LANGUAGES))
    for spec in specs:
        marks = ("yes" if lang in spec.languages else "-" for lang in LANGUAGES)
        row = "  ".join(m.ljust(len(lang)) for m, lang in zip(marks, LANGUAGES, strict=True))
        click.echo((spec.name.ljust(width) + row).rstrip())


@cli.command()
@click.argument("pattern")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_registry
def describe(registry: Registry, pattern: str, as_json: bool) -> None:
    """Describe a pattern: its summary, languages and options."""
    spec = registry.get(pattern)
    if as_json:
        _echo_json(spec.to_json())
        return
    click.echo(f"{spec.name}: {spec.summary}")
    click.echo(f"Reference: templategen.reference.{spec.reference} (templategen show {spec.name})")
    click.echo(f"Languages: {', '.join(spec.languages) or 'none yet'}")
    click.echo("Options (--set NAME=VALUE):")
    for option in spec.options:
        only = f", {'/'.join(option.languages)} only" if option.languages else ""
        default = json.dumps(option.default, ensure_ascii=False)
        click.echo(f"  {option.name} ({option.type}{only}, default {default})")
        click.echo(f"      {option.help}")
        click.echo(f"      Allowed: {option.allowed()}.")


@cli.command()
@click.argument("pattern")
@pass_registry
def show(registry: Registry, pattern: str) -> None:
    """Print the Python reference implementation of a pattern.

    The pattern's own module comes first; the other reference modules it is built
    from (its reference_modules, such as the lease scripts) follow, each after a
    comment line naming it.
    """
    spec = registry.get(pattern)
    modules = [spec.reference, *(m for m in spec.reference_modules if m != spec.reference)]
    for i, module in enumerate(modules):
        source = files("templategen.reference").joinpath(f"{module}.py")
        if not source.is_file():
            raise TemplateBugError(
                f"the reference of {spec.name} (templategen.reference.{module}) is not written yet"
            )
        if i:
            click.echo(f"\n# ---- templategen/reference/{module}.py ----\n")
        click.echo(source.read_text(encoding="utf-8"), nl=False)


@cli.command(name="render")
@click.argument("patterns", nargs=-1)
@click.option("-l", "--lang", "language", metavar="LANG", help="Language to render.")
@click.option(
    "--set", "settings", multiple=True, metavar="NAME=VALUE", help="Set an option (repeatable)."
)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Write DIR/<language>/<file> instead of printing.",
)
@click.option("--force", is_flag=True, help="Overwrite files that differ from the rendering.")
@click.option("--dry-run", is_flag=True, help="Say what would be written; write nothing.")
@click.option("--all", "all_", is_flag=True, help="Render every pattern in all its languages.")
@pass_registry
def render_cmd(
    registry: Registry,
    patterns: tuple[str, ...],
    language: str | None,
    settings: tuple[str, ...],
    out: Path | None,
    force: bool,
    dry_run: bool,
    all_: bool,
) -> None:
    """Render patterns as code: one file to stdout, or any number under -o DIR.

    Files go to DIR/<language>/<file>. A file that differs from what is already there is
    overwritten only with --force; --dry-run lists what would change, writes nothing, and
    exits 1 when anything would.
    """
    options = _parse_sets(settings)
    if all_:
        if patterns or options:
            raise click.UsageError("--all renders defaults only: give no PATTERN or --set")
        if out is None:
            raise click.UsageError("--all needs -o/--out DIR")
        rendered = render_all(registry=registry, languages=[language] if language else None)
    else:
        if not patterns:
            raise click.UsageError("give a PATTERN (see templategen list) or --all")
        if language is None:
            raise click.UsageError(f"-l/--lang is required: one of {', '.join(LANGUAGES)}")
        # One batch: several TypeScript or Express files share one prettier and tsc run.
        rendered = render_many([(p, language, options) for p in patterns], registry=registry)
    if out is None:
        if force or dry_run:
            raise click.UsageError("--force and --dry-run need -o/--out DIR")
        if len(rendered) != 1:
            raise click.UsageError("several files need -o/--out DIR; stdout takes one")
        click.echo(rendered[0].text, nl=False)
        return
    _write(rendered, out, force=force, dry_run=dry_run)


def _write(rendered: list[RenderedFile], out: Path, *, force: bool, dry_run: bool) -> None:
    planned = output.plan(rendered, out)
    if dry_run:
        for p in planned:
            note = " (needs --force)" if p.action == "overwrite" and not force else ""
            verb = "unchanged" if p.action == "unchanged" else f"would {p.action}"
            click.echo(f"{verb}: {p.target}{note}")
        if any(p.action != "unchanged" for p in planned):
            sys.exit(1)  # like `black --check`: 1 means the directory is not up to date
        return
    output.write(planned, out, force=force)
    done = {"create": "created", "overwrite": "overwrote", "unchanged": "unchanged"}
    for p in planned:
        click.echo(f"{done[p.action]}: {p.target}")


@cli.command(name="verify")
@click.argument("patterns", nargs=-1)
@click.option(
    "-l", "--lang", "languages", multiple=True, metavar="LANG", help="Only this language."
)
@click.option(
    "--set", "settings", multiple=True, metavar="NAME=VALUE", help="Set an option (repeatable)."
)
@click.option("--redis-url", metavar="URL", help="Redis to test against (default: $REDIS_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_registry
def verify_cmd(
    registry: Registry,
    patterns: tuple[str, ...],
    languages: tuple[str, ...],
    settings: tuple[str, ...],
    redis_url: str | None,
    as_json: bool,
) -> None:
    """Render patterns and run their behaviour scenarios against a real Redis.

    Redis is --redis-url, else $REDIS_URL, else a private redis-server started for the
    run. Exits 0 only when every target passed.
    """
    targets = verify.select_targets(registry, patterns, languages, _parse_sets(settings))

    def progress(target: RenderedFile, result: ScenarioResult) -> None:
        if not as_json:
            where = f"{target.pattern} ({target.language})"
            click.echo(f"  {result.status:<7} {where}: {result.scenario}", err=True)

    with verify.redis_for_verify(redis_url) as url:
        report = verify.run(url, targets, on_result=progress, registry=registry)
    if as_json:
        _echo_json(report.to_json())
    else:
        _print_report(report)
    if not report.passed:
        sys.exit(1)


def _print_report(report: verify.VerifyReport) -> None:
    """A table of patterns by languages, then the reason for everything not passed."""
    languages = [lang for lang in LANGUAGES if any(r.language == lang for r in report.results)]
    cells = {(r.pattern, r.language): r.status for r in report.results}
    rows = sorted({r.pattern for r in report.results})
    width = max(len("pattern"), *(len(p) for p in rows)) + 2
    click.echo("")
    click.echo("pattern".ljust(width) + "  ".join(lang.ljust(8) for lang in languages).rstrip())
    for pattern in rows:
        marks = (cells.get((pattern, lang), "-").ljust(8) for lang in languages)
        click.echo((pattern.ljust(width) + "  ".join(marks)).rstrip())
    click.echo("")
    for result in report.results:
        click.echo(f"{result.status} {result.pattern} ({result.language}): {result.message}")
    failed = sum(r.status == "failed" for r in report.results)
    skipped = sum(r.status == "skipped" for r in report.results)
    if report.passed:
        click.echo(f"verify passed: {len(report.results)} target(s), {skipped} skipped.")
    else:
        click.echo(
            f"verify did not pass: {failed} failed, {skipped} skipped, "
            f"of {len(report.results)} target(s)."
        )


def main() -> None:
    """The ``templategen`` console script."""
    cli(prog_name="templategen")
