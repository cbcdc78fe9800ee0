"""Helpers for the Express tests: check and run rendered CommonJS with the pinned toolchain.

Files go into a folder whose package.json says ``"type": "commonjs"`` and whose
node_modules is the harness's (as the engine's own check and the suite targets do), so
they ``require("redis")``, ``require("express")`` and each other.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from templategen.formatting import (
    JAVASCRIPT_CHECK_OPTIONS,
    TYPESCRIPT_HARNESS,
    javascript_workspace,
    typescript_toolchain,
)

_TSC_ERROR = re.compile(
    r"^(?P<file>[^(\n]+)\((?P<line>\d+),(?P<col>\d+)\): error (?P<text>.*)$", re.M
)


def write_files(folder: Path, files: Mapping[str, str]) -> None:
    """``files`` in ``folder``, made a CommonJS folder with the harness's node_modules."""
    _, modules = typescript_toolchain()
    folder.mkdir(parents=True, exist_ok=True)
    javascript_workspace(folder, modules)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


def checkjs(folder: Path, files: Mapping[str, str]) -> dict[str, list[str]]:
    """Type-check JavaScript ``files`` as the engine does (``tsc --checkJs``, strict).

    Unused locals are allowed (test files declare what they only type-check). Returns the
    errors per file name ({} when clean).
    """
    node, modules = typescript_toolchain()
    write_files(folder, files)
    options = {**JAVASCRIPT_CHECK_OPTIONS, "rootDir": ".", "noUnusedLocals": False}
    config = {
        "extends": str(TYPESCRIPT_HARNESS / "tsconfig.json"),
        "compilerOptions": options,
        "include": [],
        "files": sorted(files),
    }
    (folder / "tsconfig.json").write_text(json.dumps(config), encoding="utf-8")
    out = subprocess.run(
        [node, str(modules / "typescript" / "bin" / "tsc"), "-p", ".", "--pretty", "false"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    errors: dict[str, list[str]] = {}
    for match in _TSC_ERROR.finditer(out.stdout):
        errors.setdefault(match["file"], []).append(f"{match['line']}: {match['text']}")
    if out.returncode != 0 and not errors:
        raise AssertionError(f"tsc failed without file errors:\n{out.stdout}{out.stderr}")
    return errors


def node_run(folder: Path, script: str, name: str = "run.js") -> str:
    """Run ``script`` (CommonJS unless ``name`` ends in .mjs) in ``folder``; its stdout."""
    node, _ = typescript_toolchain()
    path = folder / name
    path.write_text(script, encoding="utf-8")
    out = subprocess.run([node, str(path)], cwd=folder, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def jsdoc_types(text: str) -> list[str]:
    """The type expressions of the JSDoc tags in ``text`` (``@param {T}`` gives ``T``)."""
    types = []
    for match in re.finditer(r"@(?:param|returns|type|typedef|property|template)\s*\{", text):
        depth, i = 1, match.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        types.append(text[match.end() : i - 1])
    return types
