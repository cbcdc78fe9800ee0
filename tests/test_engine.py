"""The rendering pipeline end to end, on fixture patterns (tests/fixtures/)."""

from __future__ import annotations

import ast
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import black
import pytest
from templategen.reference import _lease

from templategen import __version__
from templategen.engine import render, render_all
from templategen.errors import (
    NotSupportedError,
    OptionError,
    QuotingError,
    RenderedCodeError,
    TemplateBugError,
    UnknownLanguageError,
    UnknownPatternError,
)
from templategen.formatting import BLACK_MODE
from templategen.registry import Registry

FIXTURES = Path(__file__).parent / "fixtures"
GREETING = Registry(FIXTURES / "templates")
BROKEN = Registry(FIXTURES / "broken_templates")

HOSTILE = "a'b\"c\\d\n\r\t\x00{{x}} ${y} %s */ \"\"\" ''' \u2028\u2029 \U0001f600 é\x7f"


def load(text: str) -> ModuleType:
    module = ModuleType("rendered")
    exec(compile(text, "rendered.py", "exec"), module.__dict__)
    return module


def greeting(**options: Any) -> str:
    return render("greeting", "python", options, registry=GREETING).text


# --- rendering ---------------------------------------------------------------------------


def test_defaults_render_to_python_that_runs():
    rendered = render("greeting", "python", registry=GREETING)
    assert rendered.path == PurePosixPath("python/greeting.py")
    module = load(rendered.text)
    assert module.greet("Ada") == "Hello, Ada"
    assert module.Greeter().key("x") == "greet:x"
    assert (module.TTL, module.TTL_MS, module.RETRIES, module.ENABLED) == (60.0, 60000, 3, True)


def test_typed_and_string_option_values_give_the_same_file():
    typed = greeting(ttl=1.5, retries=7, enabled=False)
    strings = greeting(ttl="1.5", retries="7", enabled="false")
    assert typed == strings
    module = load(typed)
    assert (module.TTL, module.TTL_MS, module.RETRIES, module.ENABLED) == (1.5, 1500, 7, False)


def test_kebab_case_option_names_are_accepted():
    module = load(greeting(**{"class-name": "Welcomer", "function-name": "welcome"}))
    assert module.welcome("Bo") == "Hello, Bo"


def test_hostile_string_option_round_trips_through_the_rendered_module():
    module = load(greeting(greeting=HOSTILE, key_prefix=HOSTILE))
    assert module.GREETING == HOSTILE
    assert module.Greeter().key("k") == HOSTILE + ":k"


def header_lines(text: str) -> list[str]:
    lines = text.splitlines()  # splits on U+2028, \x0b, \x1c... too: stricter than Python
    return lines[: lines.index("")]


def test_hostile_string_cannot_break_out_of_the_header_comment():
    text = greeting(greeting=HOSTILE)
    lines = header_lines(text)
    assert len(lines) == 2 + len(GREETING.get("greeting").options)
    assert all(line.startswith("# ") for line in lines)
    # The header is comments only: the first statement is the docstring after it.
    first = ast.parse(text).body[0]
    assert isinstance(first, ast.Expr) and first.lineno == len(lines) + 2


def test_header_names_generator_pattern_and_every_option_as_a_literal():
    text = greeting(greeting="hi\n", retries=4)
    header = "\n".join(header_lines(text)) + "\n"
    assert f"templategen {__version__}" in header
    assert "greeting pattern (python)" in header
    assert "#   greeting = 'hi\\n'\n" in header
    assert "#   retries = 4\n" in header
    assert "#   ttl = 60.0  (default)\n" in header
    for name in ("key_prefix", "enabled", "mode", "class_name", "function_name", "hmac_key_env"):
        assert f"#   {name} = " in header


def test_output_is_blacks_output():
    text = greeting(greeting=HOSTILE)
    assert black.format_str(text, mode=BLACK_MODE) == text


def test_lua_scripts_reach_the_template_byte_for_byte():
    module = load(greeting())
    assert module.READ_OR_LEASE_LUA == _lease.READ_OR_LEASE_LUA
    assert module.FILL_IF_LEASED_LUA == _lease.FILL_IF_LEASED_LUA


def test_choice_selects_a_layout():
    assert load(greeting(mode="fancy")).greet("x") == "*Hello, x*"


def test_render_all_renders_every_pattern_in_every_language_it_has():
    files = render_all(registry=GREETING)
    assert [(f.pattern, f.language) for f in files] == [("greeting", "python")]
    assert render_all(registry=GREETING, languages=["go"]) == []


# --- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"greting": "x"}, "unknown option 'greting' for greeting (did you mean 'greeting'?)"),
        ({"nope": "x"}, "options for python: key_prefix, greeting, ttl"),
        ({"retries": "three"}, "option retries: 'three' is not an integer"),
        ({"retries": 2.5}, "option retries: 2.5 is of type float, not int"),
        ({"retries": True}, "option retries: True is of type bool, not int"),
        (
            {"retries": "11"},
            "option retries: '11' is out of range; allowed: an integer from 0 to 10",
        ),
        ({"ttl": "nan"}, "option ttl: 'nan' is not a number"),
        ({"ttl": float("inf")}, "option ttl: inf is not a finite number"),
        ({"ttl": "1_000"}, "option ttl: '1_000' is not a number"),
        ({"retries": "9" * 5000}, "option retries: '99999"),
        ({"ttl": 10**400}, "is out of range"),
        ({"ttl": "1e999"}, "is not a finite number"),
        ({"ttl": "0.0015"}, "option ttl: '0.0015' has more than millisecond precision"),
        ({"enabled": "maybe"}, "option enabled: 'maybe' is not true or false"),
        ({"mode": "fanzy"}, "'fanzy' is not one of the choices (did you mean 'fancy'?)"),
        ({"key_prefix": ""}, "option key_prefix: '' is empty; allowed: a string of 1 to 200"),
        ({"key_prefix": "x" * 201}, "is 201 characters long; allowed: a string of 1 to 200"),
        ({"key_prefix": "a\ud800b"}, "contains a lone surrogate (U+D800)"),
        ({"key_prefix": 5}, "option key_prefix: 5 is of type int, not str"),
        ({"hmac_key_env": "lower"}, "does not match [A-Z_][A-Z0-9_]*"),
        ({"class_name": "1abc"}, "'1abc' is not an identifier"),
        ({"class_name": "class"}, "'class' is a Python keyword"),
        ({"class_name": "os"}, "'os' is a name the greeting template defines itself"),
        ({"function_name": "Greeter"}, "options class_name and function_name are both 'Greeter'"),
    ],
)
def test_invalid_option_is_refused_naming_it_and_what_is_allowed(options, expected):
    with pytest.raises(OptionError) as info:
        render("greeting", "python", options, registry=GREETING)
    assert expected in str(info.value)
    assert "allowed" in str(info.value) or "options for" in str(info.value)


def test_same_option_in_kebab_and_snake_case_is_refused():
    with pytest.raises(OptionError, match="given twice"):
        render("greeting", "python", {"class_name": "A", "class-name": "B"}, registry=GREETING)


def test_choice_missing_in_one_language_says_so():
    from templategen.options import resolve_options

    spec = GREETING.get("greeting")
    with pytest.raises(
        OptionError, match="'pythonic' is not available in go; allowed: one of plain, fancy"
    ):
        resolve_options(spec.options, {"mode": "pythonic"}, pattern="greeting", language="go")


def test_option_of_another_language_is_refused():
    from templategen.options import resolve_options

    spec = GREETING.get("greeting")
    with pytest.raises(OptionError, match="hmac_key_env applies only to python, not go"):
        resolve_options(spec.options, {"hmac_key_env": "K"}, pattern="greeting", language="go")


def test_unknown_pattern_and_language_suggest_a_name():
    with pytest.raises(UnknownPatternError, match="did you mean 'greeting'"):
        render("greting", "python", registry=GREETING)
    with pytest.raises(UnknownLanguageError, match="did you mean 'python'"):
        render("greeting", "pyton", registry=GREETING)
    with pytest.raises(UnknownLanguageError, match="greeting has no go template yet"):
        render("greeting", "go", registry=GREETING)


# --- template bugs --------------------------------------------------------------------------


def test_value_without_a_filter_is_an_error_not_output():
    with pytest.raises(
        TemplateBugError, match=r"unfiltered/python.py.j2, line 1: .*without a language filter"
    ):
        render("unfiltered", "python", registry=BROKEN)


def test_undefined_name_is_an_error_with_its_line():
    with pytest.raises(
        TemplateBugError, match=r"undefined-name/python.py.j2, line 2: .*'nope' is undefined"
    ):
        render("undefined-name", "python", registry=BROKEN)


def test_jinja_builtin_filters_are_not_available():
    with pytest.raises(TemplateBugError, match="No filter named 'upper'"):
        render("builtin-filter", "python", registry=BROKEN)


def test_script_filter_refuses_option_values():
    with pytest.raises(TemplateBugError, match="takes only the reference's own text"):
        render("script-misuse", "python", registry=BROKEN)


def test_rendered_code_that_does_not_compile_shows_numbered_text():
    with pytest.raises(RenderedCodeError) as info:
        render("bad-output", "python", registry=BROKEN)
    message = str(info.value)
    assert "python/broken.py: the rendered Python does not compile" in message
    assert ">>    8 | def thing(:" in message  # 3 header lines, a blank, the docstring, 2 blank
    assert "    1 | # Generated by templategen" in message


def test_language_without_a_formatter_is_not_yet_supported(monkeypatch, tmp_path):
    # Every real language has a check now, so the test defines one that has none: known
    # to the registry, with filters and a template, but nothing in FORMATTERS.
    from templategen import languages, quoting

    cobol = languages.Language("cobol", "cobol.cbl.j2", "*>")
    monkeypatch.setitem(languages.LANGUAGES, "cobol", cobol)
    monkeypatch.setitem(quoting.FILTERS, "cobol", quoting.FILTERS["typescript"])
    monkeypatch.setitem(quoting.RESERVED, "cobol", {})
    folder = tmp_path / "future-language"
    folder.mkdir()
    (folder / "pattern.toml").write_text(
        'name = "future-language"\nsummary = "A fixture."\nreference = "_lease"\n'
        'reference_modules = ["_lease"]\n\n[files]\ncobol = "future.cbl"\n',
        encoding="utf-8",
    )
    (folder / "cobol.cbl.j2").write_text("DISPLAY 'hello'.\n", encoding="utf-8")
    with pytest.raises(NotSupportedError, match="cobol output is not yet supported"):
        render("future-language", "cobol", registry=Registry(tmp_path))


def test_filters_refuse_values_of_the_wrong_type():
    from templategen.quoting import FILTERS

    with pytest.raises(QuotingError):
        FILTERS["python"]["num"](True)
    with pytest.raises(QuotingError):
        FILTERS["python"]["str"](5)


@pytest.mark.parametrize("language", ["python", "typescript", "go", "express"])
def test_header_of_every_language_is_comment_lines_with_escaped_literals(language):
    from templategen.engine import header
    from templategen.languages import LANGUAGES
    from templategen.options import resolve_options
    from templategen.quoting import literal

    spec = GREETING.get("greeting")
    resolved = resolve_options(
        spec.options, {"greeting": HOSTILE}, pattern="greeting", language=language
    )
    text = header(spec, language, resolved)
    lines = text.splitlines()
    assert lines[-1] == ""
    assert len(lines) == 3 + len(resolved.values)
    assert all(line.startswith(LANGUAGES[language].comment + " ") for line in lines[:-1])
    assert f"  greeting = {literal(language, HOSTILE)}\n" in text


def test_only_the_cli_imports_click():
    # (black imports click itself; what matters is that our engine does not depend on it.)
    package = Path(__file__).parent.parent / "templategen"
    for module in package.glob("*.py"):
        if module.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] == "click" for n in names), module.name


def test_an_error_in_a_shared_partial_names_the_partial_and_its_line():
    with pytest.raises(TemplateBugError, match=r"^_shared/python/bad.py.j2, line 2: .*'missing'"):
        render("bad-partial", "python", registry=BROKEN)


def test_a_template_syntax_error_names_the_template_and_line():
    with pytest.raises(TemplateBugError, match=r"^builtin-filter/python.py.j2, line 1: "):
        render("builtin-filter", "python", registry=BROKEN)
