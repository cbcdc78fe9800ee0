"""Rendering: options → validated values → flat context → Jinja → header → formatter.

The public API::

    from templategen.engine import render, render_all

    rendered = render("cache-aside", "python", {"key_prefix": "app", "ttl": 60})
    rendered.path   # PurePosixPath('python/cache_aside.py')
    rendered.text   # black-formatted source, header included

Rendering many files at once (:func:`render_all`, :func:`render_many`) gives the same
files, and the same first error, as rendering them one by one, faster: the TypeScript
and Express checks run as one batch (:func:`.formatting.check_and_format_all`).

Nothing here writes files (see :mod:`.output`) or knows about the command line.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import jinja2

from . import __version__
from .context import build_context
from .errors import TemplateBugError, TemplategenError
from .formatting import check_and_format_all
from .languages import LANGUAGES, get_language
from .options import ResolvedOptions, resolve_options
from .quoting import FILTERS, Code, literal
from .registry import PatternSpec, Registry

__all__ = ["RenderedFile", "header", "render", "render_all", "render_many", "render_template"]


@dataclass(frozen=True, slots=True)
class RenderedFile:
    """One rendered, checked and formatted file."""

    pattern: str
    language: str
    #: Where it goes under an output directory: ``<language>/<files.language>``.
    path: PurePosixPath
    text: str
    options: ResolvedOptions


class _TraversableLoader(jinja2.BaseLoader):
    """Loads ``<pattern>/<template>`` from a registry root (a folder or package data)."""

    def __init__(self, pattern: PatternSpec) -> None:
        self._pattern = pattern

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        if template.startswith("_shared/") and self._pattern.shared is not None:
            source = self._pattern.shared.joinpath(*template.split("/")[1:])
        else:
            source = self._pattern.folder.joinpath(template)
        if not source.is_file():
            raise jinja2.TemplateNotFound(template)
        name = template if template.startswith("_shared/") else f"{self._pattern.name}/{template}"
        return source.read_text(encoding="utf-8"), name, _fresh


def _fresh() -> bool:
    return True


def _finalize(value: object) -> Code:
    # Every {{ ... }} ends here: only what a language filter produced may be output.
    if type(value) is Code:
        return value
    raise TemplateBugError(
        f"{value!r} reached the output without a language filter; "
        "use |str, |ident, |num, |bool or |script"
    )


def _environment(pattern: PatternSpec, language: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=_TraversableLoader(pattern),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    # No logic in templates: Jinja's own filters and globals (range, join, format, ...)
    # are gone; only the language's quoting filters remain.
    env.filters.clear()
    env.globals.clear()
    env.filters.update({name: _strict(f) for name, f in FILTERS[language].items()})
    return env


def _strict(quote: Callable[[object], Code]) -> Callable[[object], Code]:
    def filter_(value: object) -> Code:
        if isinstance(value, jinja2.Undefined):
            # StrictUndefined raises on str(): report the missing name rather than the
            # filter's complaint about the value's type.
            str(value)
        return quote(value)

    return filter_


def _where(exc: BaseException, name: str) -> str:
    """``template, line N`` of the innermost template frame (a partial, if it failed there)."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{exc.filename or name}, line {exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    return f"{frames[-1].filename}, line {frames[-1].lineno}" if frames else name


def render_template(pattern: PatternSpec, language: str, context: Mapping[str, object]) -> str:
    """Render ``pattern``'s template for ``language``; any failure is a TemplateBugError."""
    name = f"{pattern.name}/{LANGUAGES[language].template}"
    try:
        template = _environment(pattern, language).get_template(LANGUAGES[language].template)
        return template.render(context)
    except (jinja2.TemplateError, TemplategenError) as exc:
        where = _where(exc, name)
        raise TemplateBugError(f"{where}: {type(exc).__name__}: {exc}") from None


def header(pattern: PatternSpec, language: str, options: ResolvedOptions) -> str:
    """The comment on top of every file: generator, pattern and every option value."""
    lines = [
        f"Generated by templategen {__version__} from the {pattern.name} pattern ({language}).",
        "Options (change them by rendering again with --set NAME=VALUE):",
    ]
    for name, value in options.values.items():
        # The value as the language's escaped literal: a newline in a user string is
        # written as \n and cannot end the comment.
        mark = "" if name in options.given else "  (default)"
        lines.append(f"  {name} = {literal(language, value)}{mark}")
    prefix = LANGUAGES[language].comment
    text = "".join(f"{prefix} {line}\n" for line in lines)
    if len(text.splitlines()) != len(lines):
        raise TemplateBugError(f"a header line of {pattern.name} holds a line break")
    return text + "\n"


def _render_specs(
    requests: Sequence[tuple[PatternSpec, str, Mapping[str, object]]],
) -> list[RenderedFile]:
    """Render ``(pattern, language, options)`` requests; one by one, as far as errors go.

    Options and templates are resolved for each request in order, then every text is
    checked together. The error raised is the one rendering them one after another would
    raise: that of the first request, in order, that fails at any step.
    """
    prepared = []
    failed: TemplategenError | None = None
    for pattern, language, options in requests:
        try:
            pattern.language(language)
            resolved = resolve_options(
                pattern.options,
                options,
                pattern=pattern.name,
                language=language,
                reserved_names=pattern.reserved_names.get(language, ()),
            )
            body = render_template(pattern, language, build_context(pattern, language, resolved))
        except TemplategenError as exc:
            # Raised only after the files before this one are checked: one of them failing
            # is the error rendering them in order would have stopped at first.
            failed = exc
            break
        path = PurePosixPath(language) / pattern.files[language]
        text = header(pattern, language, resolved) + body
        prepared.append((pattern, language, resolved, path, text))
    texts = check_and_format_all([(lang, text, str(path)) for _, lang, _, path, text in prepared])
    if failed is not None:
        raise failed
    return [
        RenderedFile(pattern.name, language, path, text, resolved)
        for (pattern, language, resolved, path, _), text in zip(prepared, texts, strict=True)
    ]


def render(
    pattern: str,
    language: str,
    options: Mapping[str, object] | None = None,
    *,
    registry: Registry | None = None,
) -> RenderedFile:
    """Render one pattern in one language; option names may be snake- or kebab-case."""
    spec = (registry or Registry()).get(pattern)
    return _render_specs([(spec, language, options or {})])[0]


def render_many(
    requests: Iterable[tuple[str, str, Mapping[str, object] | None]],
    *,
    registry: Registry | None = None,
) -> list[RenderedFile]:
    """:func:`render` of each ``(pattern, language, options)``, checked as one batch.

    An unknown pattern name is refused before anything is rendered.
    """
    registry = registry or Registry()
    specs = [(registry.get(name), language, options or {}) for name, language, options in requests]
    return _render_specs(specs)


def render_all(
    *, registry: Registry | None = None, languages: Iterable[str] | None = None
) -> list[RenderedFile]:
    """Every pattern in every language it supports (or only ``languages``), defaults only."""
    registry = registry or Registry()
    wanted = {get_language(name).name for name in languages} if languages else set(LANGUAGES)
    return _render_specs(
        [
            (spec, language, {})
            for spec in registry.all()
            for language in spec.languages
            if language in wanted
        ]
    )
