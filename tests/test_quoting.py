"""The language filters: literals evaluate to exactly their input, identifiers are refused
when the language reserves them. JavaScript literals are evaluated by real node; Go's are
in test_quoting_go.py."""

from __future__ import annotations

import ast
import builtins
import json
import keyword
import shutil
import subprocess
from pathlib import Path

import black
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from templategen.reference import _lease

from templategen.errors import OptionError, QuotingError
from templategen.formatting import BLACK_MODE
from templategen.options import resolve_options
from templategen.quoting import FILTERS, Code, TrustedText, identifier_problem
from templategen.registry import Registry

#: Fragments that break naive quoting in at least one target language.
HOSTILE_PARTS = [
    "'", '"', "\\", "\n", "\r", "\r\n", "\t", "\x00", "\x1b", "\x7f", "{{", "}}", "{%", "${",
    "`", "%s", "%d", "%", "{x}", "*/", "/*", "//", "#", '"""', "'''", "\u2028", "\u2029",
    "\x85", "\x0b\x0c", "\x1c\x1d\x1e", "\ufeff", "\u202e", "\U0001f600", "\U0010ffff",
    "\u00e9", "\ufffd", "\\u0041", "\\x41", "\\U0001F600", "\\n", "</script>", "\a\b\f\v",
]  # fmt: skip

texts = st.lists(st.sampled_from(HOSTILE_PARTS) | st.text(max_size=6), max_size=10).map("".join)

py_str = FILTERS["python"]["str"]
js_str = FILTERS["typescript"]["str"]


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not on PATH; these tests need a real node (apt-get install nodejs)")
    return found


def node_eval(literals: list[str], tmp_path: Path) -> list[str]:
    """Evaluate JS string literals with real node; returns each string's UTF-8 as hex."""
    program = tmp_path / "literals.js"
    program.write_text(
        "const xs = [\n"
        + ",\n".join(literals)
        + "\n];\nprocess.stdout.write(JSON.stringify("
        + "xs.map((s) => Buffer.from(s, 'utf8').toString('hex'))));\n",
        encoding="utf-8",
    )
    out = subprocess.run([node(), str(program)], capture_output=True, text=True, check=True)
    result: list[str] = json.loads(out.stdout)
    return result


# --- string literals ---------------------------------------------------------------------


@given(texts)
def test_python_literal_evaluates_to_exactly_the_input(text):
    literal = py_str(text)
    assert type(literal) is Code
    assert ast.literal_eval(literal) == text


@settings(max_examples=50)
@given(texts)
def test_python_literal_survives_black(text):
    source = black.format_str(f"X = {py_str(text)}\n", mode=BLACK_MODE)
    namespace: dict[str, object] = {}
    exec(compile(source, "literal.py", "exec"), namespace)
    assert namespace["X"] == text


def test_python_literal_keeps_astral_characters_whole():
    # json.dumps would give a surrogate pair, which Python reads as two code points.
    assert ast.literal_eval(py_str("\U0001f600")) == "\U0001f600"
    assert len(ast.literal_eval(py_str("\U0001f600"))) == 1


@given(texts)
def test_js_literal_is_ascii_on_one_line(text):
    literal = js_str(text)
    assert literal.isascii()
    assert len(literal.splitlines()) == 1
    assert json.loads(literal) == text


def test_js_literals_evaluated_by_node_equal_the_inputs(tmp_path):
    cases = [*HOSTILE_PARTS, "".join(HOSTILE_PARTS), ""]
    got = node_eval([js_str(c) for c in cases], tmp_path)
    assert got == [c.encode("utf-8").hex() for c in cases]


@settings(max_examples=5, deadline=None)
@given(st.lists(texts, min_size=100, max_size=100))
def test_js_literals_of_arbitrary_strings_evaluated_by_node_equal_the_inputs(cases):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        got = node_eval([js_str(c) for c in cases], Path(tmp))
    assert got == [c.encode("utf-8").hex() for c in cases]


def test_string_filters_refuse_non_strings_and_subclasses():
    class Sneaky(str):
        pass

    for language in FILTERS:
        for value in (5, None, b"x", Sneaky("x"), TrustedText("x")):
            with pytest.raises(QuotingError, match="'str' filter takes a str"):
                FILTERS[language]["str"](value)


# --- identifiers ---------------------------------------------------------------------------

PYTHON_REFUSED = [*keyword.kwlist, *keyword.softkwlist, "print", "list", "type", "id", "object"]
JS_RESERVED_WORDS = [
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "import",
    "in",
    "instanceof",
    "new",
    "null",
    "return",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
    "let",
    "static",
    "implements",
    "interface",
    "package",
    "private",
    "protected",
    "public",
    "enum",
    "await",
    "arguments",
    "eval",
    "undefined",
    "NaN",
    "Infinity",
]
GO_KEYWORDS = [
    "break",
    "case",
    "chan",
    "const",
    "continue",
    "default",
    "defer",
    "else",
    "fallthrough",
    "for",
    "func",
    "go",
    "goto",
    "if",
    "import",
    "interface",
    "map",
    "package",
    "range",
    "return",
    "select",
    "struct",
    "switch",
    "type",
    "var",
]
GO_PREDECLARED = [
    "any",
    "bool",
    "byte",
    "comparable",
    "complex64",
    "complex128",
    "error",
    "float32",
    "float64",
    "int",
    "int8",
    "int16",
    "int32",
    "int64",
    "rune",
    "string",
    "uint",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "uintptr",
    "true",
    "false",
    "iota",
    "nil",
    "append",
    "cap",
    "clear",
    "close",
    "complex",
    "copy",
    "delete",
    "imag",
    "len",
    "make",
    "max",
    "min",
    "new",
    "panic",
    "print",
    "println",
    "real",
    "recover",
]


@pytest.mark.parametrize("word", PYTHON_REFUSED)
def test_every_python_keyword_soft_keyword_and_builtin_is_refused(word):
    with pytest.raises(QuotingError, match=f"{word!r} cannot be a python identifier: a Python"):
        FILTERS["python"]["ident"](word)


def test_every_python_builtin_is_refused():
    for name in dir(builtins):
        if not name.startswith("_"):
            assert identifier_problem("python", name) is not None, name


@pytest.mark.parametrize("language", ["typescript", "express"])
@pytest.mark.parametrize("word", JS_RESERVED_WORDS)
def test_every_js_reserved_word_is_refused(language, word):
    with pytest.raises(QuotingError, match=f"{word!r} cannot be a {language} identifier"):
        FILTERS[language]["ident"](word)


@pytest.mark.parametrize("word", GO_KEYWORDS)
def test_every_go_keyword_is_refused(word):
    assert len(GO_KEYWORDS) == 25
    with pytest.raises(QuotingError, match=f"{word!r} cannot be a go identifier: a Go keyword"):
        FILTERS["go"]["ident"](word)


@pytest.mark.parametrize("word", GO_PREDECLARED)
def test_every_go_predeclared_identifier_is_refused(word):
    with pytest.raises(QuotingError, match=f"{word!r} cannot be a go identifier: a predeclared"):
        FILTERS["go"]["ident"](word)


@pytest.mark.parametrize(
    "value", ["", "1abc", "a-b", "a b", "naïve", "a\n", "x;y", "__init__", "ǅ", "a\u200bb"]
)
def test_non_identifiers_are_refused_in_every_language(value):
    for language in FILTERS:
        assert identifier_problem(language, value) is not None


def test_a_plain_name_is_accepted_everywhere():
    for language in FILTERS:
        assert FILTERS[language]["ident"]("CacheAside") == "CacheAside"


@pytest.mark.parametrize(("language", "word"), [("python", "match"), ("go", "string")])
def test_refused_identifier_option_names_option_value_reason_and_allowed(language, word):
    spec = Registry(Path(__file__).parent / "fixtures" / "templates").get("greeting")
    with pytest.raises(OptionError) as info:
        resolve_options(spec.options, {"class_name": word}, pattern="greeting", language=language)
    message = str(info.value)
    assert message.startswith(f"option class_name: {word!r} is ")
    assert "keyword" in message or "predeclared" in message
    assert "allowed: an identifier" in message


# --- numbers and booleans ------------------------------------------------------------------


@given(st.integers() | st.floats(allow_nan=False, allow_infinity=False))
def test_python_num_evaluates_to_the_number(value):
    assert ast.literal_eval(FILTERS["python"]["num"](value)) == value


def test_num_refuses_nan_infinity_bools_and_strings():
    for language in FILTERS:
        for value in (float("nan"), float("inf"), -float("inf"), True, "1", None):
            with pytest.raises(QuotingError):
                FILTERS[language]["num"](value)


def test_num_refuses_integers_the_language_cannot_hold():
    assert FILTERS["typescript"]["num"](2**53 - 1) == str(2**53 - 1)
    with pytest.raises(QuotingError, match="does not fit a typescript integer"):
        FILTERS["typescript"]["num"](2**53)
    with pytest.raises(QuotingError, match="does not fit a go integer"):
        FILTERS["go"]["num"](2**63)
    assert FILTERS["python"]["num"](2**100) == str(2**100)


def test_js_num_literals_evaluated_by_node(tmp_path):
    values = [0, -1, 2**53 - 1, 0.1, 1e-05, 1e16, -2.5, 3600.0]
    program = tmp_path / "nums.js"
    literals = ", ".join(FILTERS["typescript"]["num"](v) for v in values)
    program.write_text(f"process.stdout.write(JSON.stringify([{literals}]));\n")
    out = subprocess.run([node(), str(program)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == values


def test_bool_literals_per_language_and_no_ints():
    assert (FILTERS["python"]["bool"](True), FILTERS["python"]["bool"](False)) == (
        "True",
        "False",
    )
    for language in ("typescript", "express", "go"):
        assert FILTERS[language]["bool"](True) == "true"
        assert FILTERS[language]["bool"](False) == "false"
    for language in FILTERS:
        with pytest.raises(QuotingError):
            FILTERS[language]["bool"](1)


# --- scripts -------------------------------------------------------------------------------

LUA = TrustedText(_lease.READ_OR_LEASE_LUA)


def test_python_script_is_triple_quoted_and_evaluates_to_the_text():
    literal = FILTERS["python"]["script"](LUA)
    assert literal.startswith('"""\n')
    assert ast.literal_eval(literal) == LUA


def test_js_script_is_a_template_literal_node_reads_back(tmp_path):
    literal = FILTERS["typescript"]["script"](LUA)
    assert literal.startswith("`")
    assert node_eval([literal], tmp_path) == [LUA.encode("utf-8").hex()]


def test_script_filter_takes_only_trusted_text():
    for language in FILTERS:
        with pytest.raises(QuotingError, match="takes only the reference's own text"):
            FILTERS[language]["script"](str(LUA))


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("python", 'a """ b'),
        ("python", "a \\n b"),
        ("python", 'ends with "'),
        ("python", "a\r\nb"),
        ("typescript", "a ` b"),
        ("typescript", "a ${x} b"),
        ("typescript", "a \\ b"),
        ("express", "a ` b"),
        ("go", "a ` b"),
        ("go", "a\rb"),
        ("go", "a\x00b"),
    ],
)
def test_script_text_that_could_escape_its_quoting_is_refused(language, text):
    with pytest.raises(QuotingError):
        FILTERS[language]["script"](TrustedText(text))
