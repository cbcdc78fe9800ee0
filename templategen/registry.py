"""The pattern registry: the folders of ``templates/`` and their pattern.toml files.

A :class:`Registry` reads one templates root (by default the installed
``templategen.templates`` package; tests pass a folder of their own). Each pattern.toml
is parsed and checked when first asked for, so one malformed file names itself instead
of surfacing later as a confusing render error.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import OptionError, PatternDefinitionError, UnknownLanguageError, UnknownPatternError
from .languages import LANGUAGES, Language, get_language, suggest
from .options import OptionSpec, parse_option_spec, resolve_options

__all__ = ["CONTEXT_NAMES", "PatternSpec", "Registry"]

#: Names the engine puts in every template context; options may not take them.
CONTEXT_NAMES = frozenset({"pattern", "language", "generator_version"})

_KEYS = frozenset(
    {"name", "summary", "reference", "reference_modules", "files", "reserved_names", "options"}
)
_PATTERN_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
_MODULE = re.compile(r"[a-z_][a-z0-9_]*")
_PATH_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

_Fail = Callable[[str], PatternDefinitionError]


@dataclass(frozen=True, slots=True)
class PatternSpec:
    """One pattern: its pattern.toml, checked, and the templates beside it."""

    name: str
    summary: str
    reference: str
    reference_modules: tuple[str, ...]
    #: language -> output path under OUT/<language>/
    files: Mapping[str, PurePosixPath]
    #: Languages with a template, in the order of LANGUAGES.
    languages: tuple[str, ...]
    options: tuple[OptionSpec, ...]
    reserved_names: Mapping[str, tuple[str, ...]]
    folder: Traversable
    #: ``templates/_shared``: partials every pattern's templates may include, as
    #: ``{% include "_shared/python/errors.py.j2" %}`` (one copy of common code).
    shared: Traversable | None = None

    def option(self, name: str) -> OptionSpec:
        return next(spec for spec in self.options if spec.name == name)

    def options_for(self, language: str) -> list[OptionSpec]:
        return [spec for spec in self.options if spec.applies_to(language)]

    def language(self, name: str) -> Language:
        """The language ``name``, if this pattern has a template for it."""
        language = get_language(name)
        if name not in self.languages:
            have = ", ".join(self.languages) or "none yet"
            raise UnknownLanguageError(
                f"{self.name} has no {name} template yet; its languages: {have}"
            )
        return language

    def template(self, language: str) -> Traversable:
        return self.folder.joinpath(LANGUAGES[language].template)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "reference": self.reference,
            "languages": list(self.languages),
            "files": {lang: str(path) for lang, path in self.files.items()},
            "options": [spec.to_json() for spec in self.options],
        }


class Registry:
    """The patterns under one templates root."""

    def __init__(self, root: Traversable | Path | str | None = None) -> None:
        if root is None:
            self.root: Traversable = files("templategen.templates")
        else:
            self.root = Path(root) if isinstance(root, str) else root
        self._cache: dict[str, PatternSpec] = {}

    def names(self) -> list[str]:
        """Every pattern folder's name, sorted."""
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir() and entry.joinpath("pattern.toml").is_file()
        )

    def get(self, name: str) -> PatternSpec:
        """The pattern ``name``; a near miss gets "did you mean"."""
        if name not in self._cache:
            names = self.names()
            if name not in names:
                raise UnknownPatternError(
                    f"unknown pattern {name!r}{suggest(name, names)}; "
                    f"patterns: {', '.join(names) or '(none)'}"
                )
            spec = _load(self.root.joinpath(name))
            self._cache[name] = dataclasses.replace(spec, shared=self.root.joinpath("_shared"))
        return self._cache[name]

    def all(self) -> list[PatternSpec]:
        return [self.get(name) for name in self.names()]


def _load(folder: Traversable) -> PatternSpec:
    where = f"{folder.name}/pattern.toml"

    def fail(message: str) -> PatternDefinitionError:
        return PatternDefinitionError(f"{where}: {message}")

    try:
        data = tomllib.loads(folder.joinpath("pattern.toml").read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise fail(f"not valid TOML: {exc}") from None
    unknown = set(data) - _KEYS
    if unknown:
        raise fail(
            f"unknown keys {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_KEYS))}"
        )
    name = data.get("name")
    if name != folder.name or not _PATTERN_NAME.fullmatch(folder.name):
        raise fail(f"name must be the kebab-case folder name {folder.name!r}, got {name!r}")
    summary = data.get("summary")
    if not isinstance(summary, str) or not summary.endswith("."):
        raise fail("summary must be one sentence ending in a period")
    reference = data.get("reference")
    if not isinstance(reference, str) or not _MODULE.fullmatch(reference):
        raise fail(f"reference must be a module name of templategen.reference, got {reference!r}")
    modules = data.get("reference_modules", [])
    if not isinstance(modules, list) or not all(
        isinstance(m, str) and _MODULE.fullmatch(m) for m in modules
    ):
        raise fail("reference_modules must be a list of module names of templategen.reference")
    out_files = _files(data.get("files", {}), fail)
    languages = tuple(
        lang for lang, spec in LANGUAGES.items() if folder.joinpath(spec.template).is_file()
    )
    missing = [lang for lang in languages if lang not in out_files]
    if missing:
        raise fail(f"[files] needs an output name for {', '.join(missing)} (its template exists)")
    options = _options(data.get("options", []), where)
    reserved = _reserved(data.get("reserved_names", {}), fail)
    spec = PatternSpec(
        name=folder.name,
        summary=summary,
        reference=reference,
        reference_modules=tuple(modules),
        files=out_files,
        languages=languages,
        options=options,
        reserved_names=reserved,
        folder=folder,
    )
    # The defaults must hold in every language (identifiers differ between them), so a
    # pattern with no options given always renders.
    for lang in LANGUAGES:
        try:
            resolve_options(
                options, {}, pattern=spec.name, language=lang, reserved_names=reserved.get(lang, ())
            )
        except OptionError as exc:
            raise fail(f"a default is invalid in {lang}: {exc}") from None
    return spec


def _files(raw: object, fail: _Fail) -> dict[str, PurePosixPath]:
    if not isinstance(raw, dict):
        raise fail("[files] must be a table of language = output path")
    out: dict[str, PurePosixPath] = {}
    for lang, value in raw.items():
        if lang not in LANGUAGES:
            raise fail(f"[files]: unknown language {lang!r}; known: {', '.join(LANGUAGES)}")
        path = PurePosixPath(value) if isinstance(value, str) else None
        if (
            path is None
            or path.is_absolute()
            or not all(_PATH_PART.fullmatch(part) for part in path.parts)
        ):
            raise fail(f"[files] {lang}: {value!r} must be a relative path of plain names")
        out[lang] = path
    return out


def _options(raw: object, where: str) -> tuple[OptionSpec, ...]:
    if not isinstance(raw, list):
        raise PatternDefinitionError(f"{where}: options must be an array of tables")
    specs = tuple(parse_option_spec(item, f"{where}, options[{i}]") for i, item in enumerate(raw))
    names = [spec.name for spec in specs]
    derived = [f"{spec.name}_ms" for spec in specs if spec.unit == "seconds"]
    taken: set[str] = set(CONTEXT_NAMES)
    for name in names + derived:
        if name in taken:
            raise PatternDefinitionError(
                f"{where}: option name {name!r} is used twice (or clashes with a context name)"
            )
        taken.add(name)
    return specs


def _reserved(raw: object, fail: _Fail) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise fail("[reserved_names] must be a table of language = [names]")
    out: dict[str, tuple[str, ...]] = {}
    for lang, names in raw.items():
        if lang not in LANGUAGES:
            raise fail(f"[reserved_names]: unknown language {lang!r}")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise fail(f"[reserved_names] {lang} must be a list of names")
        out[lang] = tuple(names)
    return out
