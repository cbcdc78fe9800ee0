"""Building suite targets: the reference, and rendered files written to a work folder.

Shared by the pytest suite and ``templategen verify``, so both run exactly the same
thing. A target's ``options`` are the resolved values the code was rendered with; the
runner substitutes them into scenarios (``{{key_prefix}}``) and skips scenarios whose
``requires`` they do not meet.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..engine import RenderedFile
from ..registry import Registry
from .gotarget import build_go_driver, has_go_adapter
from .runner import Target
from .scenarios import load_option_sets
from .tstarget import (
    build_express_driver,
    build_typescript_driver,
    has_express_adapter,
    has_typescript_adapter,
)

__all__ = [
    "SUITE_HMAC_ENV",
    "NoDriverError",
    "default_options",
    "given_options",
    "option_sets",
    "reference_target",
    "rendered_target",
]

#: Secrets the rendered code reads from its environment (the pickle HMAC key), set
#: for the driver so that serializer=pickle can be verified like the others.
SUITE_HMAC_ENV = {"CACHE_HMAC_KEY": "suite-only-hmac-key-0123456789abcdef"}


class NoDriverError(LookupError):
    """The behaviour suite has no driver for this language yet."""


def default_options(pattern: str, language: str = "python") -> dict[str, Any]:
    spec = Registry().get(pattern)
    return {o.name: o.default for o in spec.options_for(language)}


def option_sets(pattern: str, language: str = "python") -> dict[str, dict[str, Any]]:
    """``defaults`` plus each named set of the pattern's scenarios.json, over the defaults."""
    base = default_options(pattern, language)
    sets = {"defaults": base}
    for name, overrides in load_option_sets(pattern).items():
        sets[name] = {**base, **{k: v for k, v in overrides.items() if k in base}}
    return sets


def given_options(pattern: str, language: str, set_name: str) -> dict[str, Any]:
    """The values of option set ``set_name`` that differ from ``language``'s defaults.

    A choice the language does not offer (msgpack or pickle outside Python) is left at
    its default, so one hostile option set serves every language.
    """
    spec = Registry().get(pattern)
    defaults = default_options(pattern, language)
    given = {}
    for name, value in option_sets(pattern, language)[set_name].items():
        option = spec.option(name)
        if value == defaults.get(name):
            continue
        if option.type == "choice" and value not in option.choices_for(language):
            continue
        given[name] = value
    return given


def _env(options: Mapping[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(SUITE_HMAC_ENV)
    hmac_env = options.get("hmac_key_env")
    if isinstance(hmac_env, str) and hmac_env:
        env[hmac_env] = SUITE_HMAC_ENV["CACHE_HMAC_KEY"]
    return env


def reference_target(pattern: str, options: Mapping[str, Any], label: str) -> Target:
    module = "templategen.reference." + Registry().get(pattern).reference
    return Target(
        pattern=pattern,
        language="python",
        label=label,
        command=[sys.executable, "-m", "templategen.suite.pydriver", "--module", module],
        options=dict(options),
        env=_env(options),
    )


def rendered_target(rendered: RenderedFile, workdir: Path, label: str) -> Target:
    """Write ``rendered`` under ``workdir`` and return the target that drives it."""
    if rendered.language == "go":
        return _go_target(rendered, workdir, label)
    if rendered.language == "typescript":
        return _typescript_target(rendered, workdir, label)
    if rendered.language == "express":
        return _express_target(rendered, workdir, label)
    if rendered.language != "python":
        raise NoDriverError(f"the behaviour suite has no {rendered.language} driver yet")
    path = workdir / rendered.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rendered.text, encoding="utf-8")
    options = dict(rendered.options.values)
    return Target(
        pattern=rendered.pattern,
        language=rendered.language,
        label=label,
        command=[sys.executable, "-m", "templategen.suite.pydriver", "--file", str(path)],
        options=options,
        env=_env(options),
    )


def _go_target(rendered: RenderedFile, workdir: Path, label: str) -> Target:
    """Vet and build the Go driver with ``rendered`` and its adapter (see gotarget)."""
    if not has_go_adapter(rendered.pattern):
        raise NoDriverError(f"the Go driver has no adapter for {rendered.pattern} yet")
    binary = build_go_driver(rendered, workdir)
    options = dict(rendered.options.values)
    return Target(
        pattern=rendered.pattern,
        language=rendered.language,
        label=label,
        command=[str(binary)],
        options=options,
        env=_env(options),
        cwd=str(binary.parent),
    )


def _typescript_target(rendered: RenderedFile, workdir: Path, label: str) -> Target:
    """Compile ``rendered`` with the TypeScript driver (see tstarget); node runs them."""
    if not has_typescript_adapter(rendered.pattern):
        raise NoDriverError(f"the TypeScript driver has no adapter for {rendered.pattern} yet")
    options = dict(rendered.options.values)
    return Target(
        pattern=rendered.pattern,
        language=rendered.language,
        label=label,
        command=build_typescript_driver(rendered, workdir),
        options=options,
        env=_env(options),
    )


def _express_target(rendered: RenderedFile, workdir: Path, label: str) -> Target:
    """The rendered CommonJS file, driven by the TypeScript driver's Express adapters."""
    if not has_express_adapter(rendered.pattern):
        raise NoDriverError(f"the Express driver has no adapter for {rendered.pattern} yet")
    options = dict(rendered.options.values)
    # Scenarios of Express's own features (the response cache) say
    # "requires": {"language": "express"}: every other target lacks the key and skips them.
    scenario_options = {**options, "language": "express"}
    return Target(
        pattern=rendered.pattern,
        language=rendered.language,
        label=label,
        command=build_express_driver(rendered, workdir),
        options=scenario_options,
        env=_env(options),
    )
