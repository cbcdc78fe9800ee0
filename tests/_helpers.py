"""Helpers the pattern tests share: command counting, waiting, threads, rendered modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from templategen.engine import render


def import_rendered(pattern: str, options: dict[str, Any], directory: Path) -> ModuleType:
    """Render ``pattern`` in Python with ``options`` into ``directory`` and import it."""
    rendered = render(pattern, "python", options)
    path = directory / rendered.path.name
    path.write_text(rendered.text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"rendered_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module
