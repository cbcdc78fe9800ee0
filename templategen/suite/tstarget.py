"""TypeScript suite targets: a rendered file compiled together with the TypeScript driver.

The driver (``templategen/drivers/typescript/src``) imports the rendered module by path
at run time and takes class names from the options, so one driver source serves every
option set; each pattern's ops live in ``src/adapters/<pattern>.ts``. One build folder
per target::

    <workdir>/typescript/
        <files.typescript>          the rendered file, at its pattern.toml path
        driver/                     a copy of the harness's src/
        tsconfig.json               extends the harness's strict tsconfig.json
        package.json, node_modules  ES modules; a link to the harness's node_modules
        out/                        what tsc emits: out/driver/driver.js runs it all

One ``tsc`` run compiles both (the rendered file has already passed the same strict
check when it was rendered). Nothing is downloaded: the packages come from the
harness's ``npm ci``.

Express output is CommonJS JavaScript, so it is not compiled: it goes into a folder of
its own whose package.json says ``"type": "commonjs"``, and the same driver, started with
``--language express``, loads it and takes its adapters from
``src/adapters/express/<pattern>.ts``::

    <workdir>/express/
        rendered/<files.express>    the rendered file; rendered/package.json: commonjs
        driver/, tsconfig.json, package.json, node_modules, out/   as above
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path, PurePosixPath

from ..engine import RenderedFile
from ..errors import TemplateBugError
from ..formatting import (
    TYPESCRIPT_HARNESS,
    javascript_workspace,
    typescript_toolchain,
    typescript_workspace,
)

__all__ = [
    "build_express_driver",
    "build_typescript_driver",
    "has_express_adapter",
    "has_typescript_adapter",
]


def has_typescript_adapter(pattern: str) -> bool:
    """Whether the TypeScript driver has an adapter for ``pattern``."""
    return (TYPESCRIPT_HARNESS / "src" / "adapters" / f"{pattern}.ts").is_file()


def has_express_adapter(pattern: str) -> bool:
    """Whether the driver has an adapter for ``pattern``'s Express output."""
    return (TYPESCRIPT_HARNESS / "src" / "adapters" / "express" / f"{pattern}.ts").is_file()


def _compile_driver(folder: Path, node: str, modules: Path, files: list[str], what: str) -> None:
    """Copy the driver into ``folder`` and compile it (and ``files``) into ``folder/out``."""
    typescript_workspace(folder, modules)
    shutil.copytree(TYPESCRIPT_HARNESS / "src", folder / "driver", dirs_exist_ok=True)
    config = {
        "extends": str(TYPESCRIPT_HARNESS / "tsconfig.json"),
        "compilerOptions": {"rootDir": ".", "outDir": "out"},
        "files": [*files, "driver/driver.ts"],
        # The driver imports its adapter by pattern name at run time: tsc cannot follow.
        "include": ["driver/adapters/**/*.ts"],
    }
    (folder / "tsconfig.json").write_text(json.dumps(config), encoding="utf-8")
    tsc = subprocess.run(
        [node, str(modules / "typescript" / "bin" / "tsc"), "-p", ".", "--pretty", "false"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    if tsc.returncode != 0:
        raise TemplateBugError(
            f"the TypeScript driver and {what} do not compile together:\n"
            + (tsc.stdout + tsc.stderr).strip()
        )


def build_typescript_driver(rendered: RenderedFile, workdir: Path) -> list[str]:
    """Write and compile ``rendered`` with the driver; the command that runs the driver."""
    node, modules = typescript_toolchain()
    path = workdir / rendered.path
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(rendered.text, encoding="utf-8")
    _compile_driver(folder, node, modules, [path.name], path.name)
    module = folder / "out" / path.with_suffix(".js").name
    return [node, str(folder / "out" / "driver" / "driver.js"), "--module", str(module)]


def build_express_driver(rendered: RenderedFile, workdir: Path) -> list[str]:
    """Write ``rendered`` (CommonJS) beside the compiled driver; the command that runs it."""
    node, modules = typescript_toolchain()
    folder = workdir / rendered.language
    module = folder / "rendered" / PurePosixPath(*rendered.path.parts[1:])
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(rendered.text, encoding="utf-8")
    javascript_workspace(folder / "rendered", modules)
    _compile_driver(folder, node, modules, [], "the Express adapters")
    driver = folder / "out" / "driver" / "driver.js"
    return [node, str(driver), "--language", "express", "--module", str(module)]
