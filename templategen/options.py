"""Pattern options: their declarations (``[[options]]`` in pattern.toml) and their values.

A value arrives as a string (``--set NAME=VALUE``) or typed (the Python API), is parsed
by its declared type and checked against its rules before anything is rendered. Every
refusal is an :class:`OptionError` naming the option, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import OptionError, PatternDefinitionError
from .languages import LANGUAGES, suggest
from .quoting import IDENTIFIER_RULE, identifier_problem

__all__ = [
    "OPTION_TYPES",
    "STRING_CAP",
    "OptionSpec",
    "OptionValue",
    "ResolvedOptions",
    "parse_option_spec",
    "resolve_options",
]

OptionValue = str | int | float | bool

OPTION_TYPES = ("string", "int", "float", "bool", "choice", "identifier")
#: No string option may be longer: generated code is read by people, and a cap keeps
#: headers and error messages sane.
STRING_CAP = 200

_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_SURROGATE = re.compile("[\ud800-\udfff]")

_COMMON_KEYS = frozenset({"name", "type", "default", "help", "languages"})
_TYPE_KEYS = {
    "string": frozenset({"min_length", "max_length", "pattern"}),
    "identifier": frozenset({"min_length", "max_length", "pattern"}),
    "int": frozenset({"min", "max", "unit"}),
    "float": frozenset({"min", "max", "unit"}),
    "choice": frozenset({"choices", "language_choices"}),
    "bool": frozenset(),
}
_UNITS = ("seconds",)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One declared option; see docs/templates.md for the meaning of each field."""

    name: str
    type: str
    default: OptionValue
    help: str
    choices: tuple[str, ...] = ()
    language_choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    min: int | float | None = None
    max: int | float | None = None
    min_length: int = 1
    max_length: int = STRING_CAP
    pattern: str | None = None
    unit: str | None = None
    #: None: the option exists in every language.
    languages: tuple[str, ...] | None = None

    def applies_to(self, language: str) -> bool:
        return self.languages is None or language in self.languages

    def choices_for(self, language: str | None) -> tuple[str, ...]:
        if language is None:
            return self.choices
        return self.language_choices.get(language, self.choices)

    def allowed(self, language: str | None = None) -> str:
        """What values are allowed, in words (describe, and every error message)."""
        if self.type == "choice":
            text = "one of " + ", ".join(self.choices_for(language))
            if language is None and self.language_choices:
                text += (
                    " ("
                    + "; ".join(
                        f"{lang}: {', '.join(c)}"
                        for lang, c in sorted(self.language_choices.items())
                    )
                    + ")"
                )
            return text
        if self.type == "bool":
            return "true or false"
        if self.type in ("int", "float"):
            kind = "an integer" if self.type == "int" else "a number"
            unit = f" {self.unit}" if self.unit else ""
            precision = " with at most millisecond precision" if self.unit == "seconds" else ""
            return f"{kind} from {self.min} to {self.max}{unit}{precision}"
        length = f"{self.min_length} to {self.max_length} characters"
        pattern = f" matching {self.pattern}" if self.pattern else ""
        if self.type == "identifier":
            where = f"{language} " if language else ""
            return (
                f"an identifier ({IDENTIFIER_RULE}; {length}{pattern}) that is not a "
                f"{where}keyword, reserved word or predeclared name"
            )
        return f"a string of {length}{pattern}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "allowed": self.allowed(),
            "help": self.help,
            "languages": list(self.languages) if self.languages is not None else None,
        }
        if self.type == "choice":
            data["choices"] = list(self.choices)
            data["language_choices"] = {k: list(v) for k, v in self.language_choices.items()}
        elif self.type in ("int", "float"):
            data.update(min=self.min, max=self.max, unit=self.unit)
        elif self.type in ("string", "identifier"):
            data.update(
                min_length=self.min_length, max_length=self.max_length, pattern=self.pattern
            )
        return data

    # --- values ----------------------------------------------------------------------

    def coerce(self, raw: object, language: str | None) -> OptionValue:
        """Parse and check one value; ``language`` None checks what holds in every language."""
        value = self._parse(raw, language)
        problem = self._problem(value, language)
        if problem is not None:
            raise self._error(raw, problem, language)
        return value

    def _error(self, raw: object, problem: str, language: str | None) -> OptionError:
        return OptionError(
            f"option {self.name}: {_show(raw)} {problem}; allowed: {self.allowed(language)}"
        )

    def _parse(self, raw: object, language: str | None) -> OptionValue:
        kind = self.type
        if kind in ("string", "identifier", "choice"):
            if type(raw) is not str:
                raise self._error(raw, f"is of type {type(raw).__name__}, not str", language)
            return raw
        if kind == "bool":
            if type(raw) is bool:
                return raw
            if type(raw) is str and raw.strip().lower() in _TRUE | _FALSE:
                return raw.strip().lower() in _TRUE
            raise self._error(raw, "is not true or false", language)
        if type(raw) is str:
            text = raw.strip()
            # The length cap keeps int() clear of its digit limit (a ValueError, not ours).
            if kind == "int" and len(text) <= 40 and _INT.fullmatch(text):
                return int(text)
            if kind == "float" and len(text) <= 40 and _FLOAT.fullmatch(text):
                return float(text)
            raise self._error(
                raw, f"is not {'an integer' if kind == 'int' else 'a number'}", language
            )
        if kind == "int" and type(raw) is int:
            return raw
        if kind == "float" and type(raw) in (int, float):
            try:
                return float(raw)  # type: ignore[arg-type]
            except OverflowError:
                raise self._error(raw, "is out of range", language) from None
        raise self._error(raw, f"is of type {type(raw).__name__}, not {kind}", language)

    def _problem(self, value: OptionValue, language: str | None) -> str | None:
        if isinstance(value, str):
            return self._text_problem(value, language)
        if isinstance(value, bool):
            return None
        if not math.isfinite(value):
            return "is not a finite number"
        if (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            return "is out of range"
        if self.unit == "seconds" and not math.isclose(
            value * 1000, round(value * 1000), rel_tol=0, abs_tol=1e-6
        ):
            return "has more than millisecond precision"
        return None

    def _text_problem(self, value: str, language: str | None) -> str | None:
        surrogate = _SURROGATE.search(value)
        if surrogate:
            return f"contains a lone surrogate (U+{ord(surrogate.group()):04X})"
        if self.type == "choice":
            if value in self.choices_for(language):
                return None
            if value in self.choices:
                return f"is not available in {language}"
            return "is not one of the choices" + suggest(value, list(self.choices))
        if len(value) > self.max_length:
            return f"is {len(value)} characters long"
        if len(value) < self.min_length:
            return "is empty" if not value else f"is only {len(value)} characters long"
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return f"does not match {self.pattern}"
        if self.type == "identifier":
            languages = [language] if language else list(self.languages or LANGUAGES)
            for lang in languages:
                problem = identifier_problem(lang, value)
                if problem is not None:
                    return f"is {problem}"
        return None


@dataclass(frozen=True, slots=True)
class ResolvedOptions:
    """Every option that applies to one render, validated, in declaration order."""

    values: Mapping[str, OptionValue]
    #: Names the caller gave; the rest are defaults.
    given: frozenset[str]


def _normalize(name: str) -> str:
    return name.strip().replace("-", "_")


def resolve_options(
    specs: Sequence[OptionSpec],
    given: Mapping[str, object],
    *,
    pattern: str,
    language: str,
    reserved_names: Collection[str] = (),
) -> ResolvedOptions:
    """Validate ``given`` (names in snake- or kebab-case) and fill in the defaults."""
    by_name = {spec.name: spec for spec in specs}
    applicable = [spec.name for spec in specs if spec.applies_to(language)]
    values: dict[str, object] = {}
    for raw_name, raw in given.items():
        name = _normalize(raw_name)
        spec = by_name.get(name)
        if spec is None:
            raise OptionError(
                f"unknown option {raw_name!r} for {pattern}{suggest(name, applicable)}; "
                f"options for {language}: {', '.join(applicable) or '(none)'}"
            )
        if not spec.applies_to(language):
            only = ", ".join(spec.languages or ())
            raise OptionError(f"option {name} applies only to {only}, not {language}")
        if name in values:
            raise OptionError(f"option {name} is given twice")
        values[name] = raw
    resolved: dict[str, OptionValue] = {}
    for spec in specs:
        if spec.applies_to(language):
            resolved[spec.name] = spec.coerce(values.get(spec.name, spec.default), language)
    _check_identifiers(specs, resolved, reserved_names, pattern)
    return ResolvedOptions(values=resolved, given=frozenset(values))


def _check_identifiers(
    specs: Iterable[OptionSpec],
    values: Mapping[str, OptionValue],
    reserved_names: Collection[str],
    pattern: str,
) -> None:
    seen: dict[object, str] = {}
    for spec in specs:
        if spec.type != "identifier" or spec.name not in values:
            continue
        value = values[spec.name]
        if value in reserved_names:
            raise OptionError(
                f"option {spec.name}: {value!r} is a name the {pattern} template defines "
                f"itself; allowed: any other identifier (reserved here: "
                f"{', '.join(sorted(reserved_names))})"
            )
        if value in seen:
            raise OptionError(
                f"options {seen[value]} and {spec.name} are both {value!r}; "
                "allowed: a different name for each"
            )
        seen[value] = spec.name


# --- declarations ----------------------------------------------------------------------


def parse_option_spec(raw: object, where: str) -> OptionSpec:
    """One ``[[options]]`` table of pattern.toml; ``where`` names it in errors."""

    def fail(message: str) -> PatternDefinitionError:
        return PatternDefinitionError(f"{where}: {message}")

    if not isinstance(raw, dict):
        raise fail("each [[options]] entry must be a table")
    kind = raw.get("type")
    if kind not in _TYPE_KEYS:
        raise fail(f"type must be one of {', '.join(OPTION_TYPES)}, got {kind!r}")
    unknown = set(raw) - _COMMON_KEYS - _TYPE_KEYS[kind]
    if unknown:
        raise fail(f"unknown keys for a {kind} option: {', '.join(sorted(unknown))}")
    missing = {"name", "default", "help"} - set(raw)
    if missing:
        raise fail(f"missing {', '.join(sorted(missing))}")
    name, help_ = raw["name"], raw["help"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise fail(f"name must be snake_case, got {name!r}")
    if not isinstance(help_, str) or not help_.endswith("."):
        raise fail(f"option {name}: help must be a sentence ending in a period")
    kwargs: dict[str, Any] = {}
    languages = raw.get("languages")
    if languages is not None:
        kwargs["languages"] = _language_list(languages, fail, f"option {name}: languages")
    if kind == "choice":
        choices = raw.get("choices")
        if (
            not isinstance(choices, list)
            or not choices
            or not all(isinstance(c, str) for c in choices)
        ):
            raise fail(f"option {name}: choices must be a non-empty list of strings")
        kwargs["choices"] = tuple(choices)
        per_language = raw.get("language_choices", {})
        if not isinstance(per_language, dict):
            raise fail(f"option {name}: language_choices must be a table")
        subsets = {}
        for lang, subset in per_language.items():
            listed = _language_list([lang], fail, f"option {name}: language_choices")
            if not isinstance(subset, list) or not subset or not set(subset) <= set(choices):
                raise fail(f"option {name}: language_choices.{lang} must be a subset of choices")
            subsets[listed[0]] = tuple(subset)
        kwargs["language_choices"] = subsets
    for key in ("min", "max"):
        if key in raw:
            bound = raw[key]
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise fail(f"option {name}: {key} must be a number")
            kwargs[key] = bound
    if kind in ("int", "float") and ("min" not in raw or "max" not in raw):
        raise fail(f"option {name}: a {kind} option needs min and max")
    if "unit" in raw:
        if raw["unit"] not in _UNITS:
            raise fail(f"option {name}: unit must be one of {', '.join(_UNITS)}")
        kwargs["unit"] = raw["unit"]
    for key in ("min_length", "max_length"):
        if key in raw:
            length = raw[key]
            if type(length) is not int or not 0 <= length <= STRING_CAP:
                raise fail(f"option {name}: {key} must be an integer from 0 to {STRING_CAP}")
            kwargs[key] = length
    if "pattern" in raw:
        try:
            re.compile(raw["pattern"])
        except (re.error, TypeError) as exc:
            raise fail(f"option {name}: pattern is not a regular expression: {exc}") from None
        kwargs["pattern"] = raw["pattern"]
    spec = OptionSpec(name=name, type=kind, default=raw["default"], help=help_, **kwargs)
    try:
        default = spec.coerce(spec.default, None)
    except OptionError as exc:
        raise fail(f"default is invalid: {exc}") from None
    for lang in spec.language_choices:
        if spec.default not in spec.language_choices[lang]:
            raise fail(f"option {name}: the default is not among language_choices.{lang}")
    # A float option written as `default = 300` in TOML is still a float.
    return dataclasses.replace(spec, default=default)


def _language_list(
    value: object, fail: Callable[[str], PatternDefinitionError], what: str
) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(f"{what} must be a list of language names")
    unknown = [v for v in value if v not in LANGUAGES]
    if unknown:
        raise fail(f"{what}: unknown languages {unknown}; known: {', '.join(LANGUAGES)}")
    return tuple(value)
