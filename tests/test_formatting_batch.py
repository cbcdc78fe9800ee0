"""Checking many files at once: the TypeScript and Express files share one prettier run and
one ``tsc --build``, and the result is exactly rendering them one by one: the same bytes,
and, when a file is broken, the same error naming that file and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from templategen.context import build_context
from templategen.engine import header, render, render_many, render_template
from templategen.errors import NotSupportedError, RenderedCodeError
from templategen.formatting import check_and_format, check_node_batch
from templategen.options import resolve_options
from templategen.registry import Registry

REGISTRY = Registry()

#: Two files of one name (cacheAside.ts twice) share the batch; one carries a prefix that
#: breaks naive quoting, so it must reach the file and come back byte for byte.
REQUESTS: list[tuple[str, str, dict[str, object]]] = [
    ("cache-aside", "typescript", {}),
    ("cache-aside", "express", {}),
    ("cache-aside", "python", {}),
    ("http-cache-headers", "express", {}),
    ("stampede-lock", "typescript", {}),
    ("cache-aside", "typescript", {"key_prefix": "é'\"\\\n${x}`\u2028\U0001f600*/"}),
    ("tag-invalidation", "go", {}),
]

#: name → (file, template): two that pass, a type error, a syntax error.
FIXTURES = {
    "fine-ts": ("fine.ts", "export const label: string = {{ label|str }};\n"),
    "fine-js": ("fine.js", '"use strict";\nmodule.exports = { label: {{ label|str }} };\n'),
    "broken-ts": (
        "broken.ts",
        "export const label: string = {{ label|str }};\nexport const n: number = label;\n",
    ),
    "broken-js": ("broken.js", "const label = {{ label|str }}\nconst = ;\n"),
}


def unformatted(pattern: str, language: str, options: dict[str, object]) -> tuple[str, str]:
    """``(text, name)`` as the engine hands them to the check: header and template output."""
    spec = REGISTRY.get(pattern)
    resolved = resolve_options(
        spec.options,
        options,
        pattern=pattern,
        language=language,
        reserved_names=spec.reserved_names.get(language, ()),
    )
    body = render_template(spec, language, build_context(spec, language, resolved))
    return header(spec, language, resolved) + body, f"{language}/{spec.files[language]}"


def fixtures(tmp_path: Path) -> Registry:
    """One-option fixture patterns, as tests/test_typescript_render.py builds them."""
    root = tmp_path / "templates"
    for name, (file, template) in FIXTURES.items():
        language = "typescript" if file.endswith(".ts") else "express"
        (root / name).mkdir(parents=True)
        (root / name / "pattern.toml").write_text(
            f'name = "{name}"\nsummary = "A fixture."\nreference = "_lease"\n'
            f'reference_modules = ["_lease"]\n\n[files]\n{language} = "{file}"\n\n'
            '[[options]]\nname = "label"\ntype = "string"\ndefault = "x"\nhelp = "A label."\n',
            encoding="utf-8",
        )
        suffix = "ts" if language == "typescript" else "js"
        (root / name / f"{language}.{suffix}.j2").write_text(template, encoding="utf-8")
    return Registry(root)


# --- the batch is the per-file check --------------------------------------------------------


@pytest.mark.slow
def test_the_batch_vouches_for_every_good_file_with_the_per_file_text() -> None:
    node_files = [(language, *unformatted(p, language, o)) for p, language, o in REQUESTS]
    node_files = [f for f in node_files if f[0] in ("typescript", "express")]
    expected = [check_and_format(*file) for file in node_files]
    # None would mean "checked alone after all": the batch must not quietly fall back.
    assert check_node_batch(node_files) == expected
    # prettier had work to do, so the texts that came back are its output, not the input.
    assert all(
        text != formatted for (_, text, _), formatted in zip(node_files, expected, strict=True)
    )


@pytest.mark.slow
def test_rendering_many_gives_the_bytes_rendering_one_by_one_gives() -> None:
    one_by_one = [render(p, language, o) for p, language, o in REQUESTS]
    assert render_many(REQUESTS) == one_by_one


def test_the_batch_takes_only_what_node_checks() -> None:
    with pytest.raises(NotSupportedError, match="python output is not checked by node"):
        check_node_batch([("python", "X = 1\n", "python/x.py")])


def test_a_file_leaning_on_another_files_global_declaration_is_not_vouched_for() -> None:
    # Checked alone, uses.ts cannot see declares.ts's global: each file is a project of its
    # own in the batch too, so the batch accepts nothing a per-file check refuses.
    declares = "declare global {\n  var shared: number;\n}\nexport {};\n"
    uses = "export const n: number = shared;\n"
    files = [("typescript", declares, "typescript/declares.ts")]
    files.append(("typescript", uses, "typescript/uses.ts"))
    assert check_node_batch(files) == [declares, None]
    with pytest.raises(RenderedCodeError, match="TS2304: Cannot find name 'shared'"):
        check_and_format("typescript", uses, "typescript/uses.ts")


# --- a broken file in a batch: the per-file error, naming that file -------------------------


@pytest.mark.slow
def test_a_type_error_in_a_batch_is_the_per_file_error_naming_that_file(tmp_path) -> None:
    registry = fixtures(tmp_path)
    requests = [("fine-ts", "typescript", {}), ("broken-ts", "typescript", {})]
    requests.append(("fine-js", "express", {}))
    with pytest.raises(RenderedCodeError) as batch:
        render_many(requests, registry=registry)
    with pytest.raises(RenderedCodeError) as alone:
        render("broken-ts", "typescript", registry=registry)
    message = str(batch.value)
    assert message.startswith("typescript/broken.ts: the rendered TypeScript does not pass")
    assert "broken.ts(6,14): error TS2322" in message
    assert ">>    6 | export const n: number = label;" in message  # after the header
    assert message == str(alone.value)


def test_the_batch_refuses_only_the_files_tsc_or_prettier_refused() -> None:
    fine = ("typescript", "export const a = 1;\n", "typescript/a.ts")
    unused = ("typescript", "const unused = 1;\nexport const b = 2;\n", "typescript/b.ts")
    commonjs = ("express", '"use strict";\nmodule.exports = { c: 3 };\n', "express/c.js")
    unparsable = ("express", "const = ;\n", "express/d.js")
    files = [fine, unused, commonjs, unparsable]
    assert check_node_batch(files) == [fine[1], None, commonjs[1], None]


def test_a_prettier_parse_error_in_a_batch_is_the_per_file_error_naming_that_file(
    tmp_path,
) -> None:
    registry = fixtures(tmp_path)
    requests = [("fine-js", "express", {}), ("broken-js", "express", {})]
    requests.append(("fine-ts", "typescript", {}))
    with pytest.raises(RenderedCodeError) as batch:
        render_many(requests, registry=registry)
    with pytest.raises(RenderedCodeError) as alone:
        render("broken-js", "express", registry=registry)
    message = str(batch.value)
    assert message.startswith("express/broken.js: prettier cannot parse the rendered JavaScript")
    assert ">>    6 | const = ;" in message  # after the header
    assert message == str(alone.value)


@pytest.mark.slow
def test_the_first_file_in_order_that_fails_is_the_error_raised(tmp_path) -> None:
    registry = fixtures(tmp_path)
    requests = [("broken-js", "express", {}), ("broken-ts", "typescript", {})]
    with pytest.raises(RenderedCodeError, match=r"^express/broken\.js: prettier cannot parse"):
        render_many(requests, registry=registry)
    with pytest.raises(RenderedCodeError, match=r"^typescript/broken\.ts: the rendered TypeScript"):
        render_many(requests[::-1], registry=registry)
    # An invalid option after a broken file: rendering in order stops at the file first.
    late_option = [requests[1], ("fine-ts", "typescript", {"label": 5})]
    with pytest.raises(RenderedCodeError, match=r"^typescript/broken\.ts: the rendered"):
        render_many(late_option, registry=registry)


def _harness_files() -> dict[str, int]:
    from templategen.formatting import TYPESCRIPT_HARNESS

    return {
        str(path.relative_to(TYPESCRIPT_HARNESS)): path.stat().st_mtime_ns
        for path in TYPESCRIPT_HARNESS.rglob("*")
        if "node_modules" not in path.parts and path.is_file()
    }


def test_checking_writes_nothing_inside_the_package() -> None:
    """tsc --build writes build info even with noEmit; it must land in the temp folder,
    not in the installed package's toolchain folder (read-only, shared by every check)."""
    before = _harness_files()
    render_many([("cache-aside", "typescript", {}), ("cache-aside", "express", {})])
    render("stampede-lock", "typescript")  # the per-file check, too
    assert _harness_files() == before


@pytest.mark.parametrize("env", ["CI", "FORCE_COLOR"])
def test_the_batch_reads_prettier_alike_where_a_ci_or_colour_setting_would_colour_it(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With CI or FORCE_COLOR set, prettier colours the names it prints; the batch reads
    those names, so it must ask for none, or it vouches for nothing."""
    monkeypatch.setenv(env, "1")
    unchanged = ("typescript", "export const a = 1;\n", "typescript/a.ts")
    reformatted = ("express", '"use strict";\nmodule.exports = {c: 3}\n', "express/c.js")
    assert check_node_batch([unchanged, reformatted]) == [
        unchanged[1],
        '"use strict";\nmodule.exports = { c: 3 };\n',
    ]
