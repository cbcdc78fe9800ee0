"""The implementations under test: the reference, and the rendered Python with defaults.

The rendered Python of a pattern is produced exactly as a user gets it, by
``templategen.engine.render(pattern, "python")`` with no options, written to a scratch
folder and imported from there. A pattern without a Python template yet is *not
rendered yet*: it gets no figure, never a borrowed one.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from templategen.engine import render
from templategen.errors import TemplategenError
from templategen.registry import Registry

__all__ = ["REDIS_PATTERNS", "Implementations", "load_module_file"]

#: The patterns that talk to Redis (http-cache-headers has no Redis to count or time).
REDIS_PATTERNS = (
    "cache-aside",
    "write-through",
    "write-behind",
    "tag-invalidation",
    "version-invalidation",
    "stampede-lock",
    "early-refresh",
)


def load_module_file(path: Path, name: str) -> ModuleType:
    """Import the Python file at ``path`` as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses look their module up in sys.modules.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Implementations:
    """The reference module and the rendered module (or why there is none) per pattern."""

    workdir: Path
    reference: dict[str, ModuleType] = field(default_factory=dict)
    rendered: dict[str, ModuleType] = field(default_factory=dict)
    rendered_files: dict[str, Path] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, workdir: Path, patterns: tuple[str, ...] = REDIS_PATTERNS) -> Implementations:
        impls = cls(workdir)
        registry = Registry()
        for pattern in patterns:
            spec = registry.get(pattern)
            impls.reference[pattern] = importlib.import_module(
                f"templategen.reference.{spec.reference}"
            )
            if "python" not in spec.languages:
                impls.missing[pattern] = "not rendered yet (no Python template)"
                continue
            try:
                rendered = render(pattern, "python", registry=registry)
            except TemplategenError as exc:
                impls.missing[pattern] = f"render failed: {exc}"
                continue
            path = workdir / f"rendered_{spec.reference}.py"
            path.write_text(rendered.text, encoding="utf-8")
            impls.rendered_files[pattern] = path
            impls.rendered[pattern] = load_module_file(path, f"bench_rendered_{spec.reference}")
        return impls

    def variants(self, pattern: str) -> list[tuple[str, ModuleType | None]]:
        """``[("reference", module), ("rendered", module or None)]``."""
        return [("reference", self.reference[pattern]), ("rendered", self.rendered.get(pattern))]

    def why_missing(self, pattern: str) -> str:
        return self.missing.get(pattern, "not rendered yet")
