"""The one flat template context: everything a template may lay out, computed here.

Templates hold no logic; when one needs a value derived from the options, it is added
in :func:`build_context`, where it is typed and tested, not computed in Jinja.
"""

from __future__ import annotations

import importlib
import re

from . import __version__
from .errors import TemplateBugError
from .options import OptionValue, ResolvedOptions
from .quoting import TrustedText
from .registry import PatternSpec

__all__ = ["ContextValue", "build_context", "lua_scripts"]

ContextValue = OptionValue | TrustedText

_LUA_NAME = re.compile(r"[A-Z][A-Z0-9_]*_LUA")


def lua_scripts(pattern: PatternSpec) -> dict[str, TrustedText]:
    """The ``*_LUA`` constants of the pattern's reference_modules, as TrustedText."""
    scripts: dict[str, TrustedText] = {}
    for name in pattern.reference_modules:
        try:
            module = importlib.import_module(f"templategen.reference.{name}")
        except ModuleNotFoundError as exc:
            raise TemplateBugError(
                f"{pattern.name}/pattern.toml lists reference module {name!r}, which cannot "
                f"be imported ({exc}); is reference/{name}.py written yet?"
            ) from None
        for attr, value in vars(module).items():
            if not (_LUA_NAME.fullmatch(attr) and isinstance(value, str)):
                continue
            if attr in scripts and scripts[attr] != value:
                raise TemplateBugError(
                    f"{pattern.name}: reference modules define {attr} with different texts"
                )
            scripts[attr] = TrustedText(value)
    return scripts


def build_context(
    pattern: PatternSpec, language: str, options: ResolvedOptions
) -> dict[str, ContextValue]:
    """The context of one render: options, derived values, Lua scripts, fixed names."""
    context: dict[str, ContextValue] = {
        "pattern": pattern.name,
        "language": language,
        "generator_version": __version__,
    }
    for name, value in options.values.items():
        context[name] = value
        if pattern.option(name).unit == "seconds" and isinstance(value, int | float):
            # Validation guarantees millisecond precision, so this rounding is exact.
            context[f"{name}_ms"] = round(value * 1000)
    context.update(lua_scripts(pattern))
    return context
