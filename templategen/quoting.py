"""Per-language filters: the only way a value reaches rendered code.

Each language registers five filters (:data:`FILTERS`):

``str``     a string literal that evaluates to exactly the value
``ident``   an identifier, refused when the language reserves or predeclares it
``num``     an int or float literal (no NaN or infinity; ints within the language's range)
``bool``    the language's true/false
``script``  our own multi-line text (the reference's Lua) in the language's readable
            multi-line form; accepts only :class:`TrustedText`, which option values never are

Every filter checks the exact type of its value (``bool`` is not an ``int`` here, a
``str`` subclass is not a ``str``) and returns :class:`Code`, the only type the template
environment lets into output.
"""

from __future__ import annotations

import builtins
import json
import keyword
import math
import re
from collections.abc import Callable, Mapping

from .errors import QuotingError

__all__ = [
    "FILTERS",
    "IDENTIFIER_RULE",
    "RESERVED",
    "Code",
    "TrustedText",
    "identifier_problem",
    "literal",
]


class Code(str):
    """Text a language filter produced: safe to place in the output as it is."""

    __slots__ = ()


class TrustedText(str):
    """Multi-line text of our own (the reference's ``*_LUA`` scripts), never user input."""

    __slots__ = ()


Filter = Callable[[object], Code]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
IDENTIFIER_RULE = "ASCII letters, digits and _, not starting with a digit"


def _require(value: object, typ: type, filter_name: str, language: str) -> None:
    if type(value) is not typ:
        raise QuotingError(
            f"the {language} {filter_name!r} filter takes a {typ.__name__}, "
            f"got {type(value).__name__} {value!r}"
        )


def _require_str(value: object, filter_name: str, language: str) -> str:
    _require(value, str, filter_name, language)
    assert isinstance(value, str)
    return value


# --- string literals -------------------------------------------------------------------


def _python_str(value: object) -> Code:
    _require_str(value, "str", "python")
    # repr, not json.dumps: JSON would write an astral character as a surrogate pair,
    # which Python reads back as two code points.
    return Code(repr(value))


def _js_str(value: object) -> Code:
    _require_str(value, "str", "typescript/javascript")
    # ASCII-only JSON: U+2028/U+2029 and every other non-ASCII character become \u
    # escapes (astral ones as the surrogate pair JavaScript strings are made of). DEL is
    # ASCII but invisible; escape it too.
    return Code(json.dumps(value, ensure_ascii=True).replace("\x7f", "\\u007f"))


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def _go_str(value: object) -> Code:
    """What Go's ``strconv.QuoteToASCII`` returns for the same text."""
    text = _require_str(value, "str", "go")
    out = ['"']
    for ch in text:
        cp = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif 0x20 <= cp < 0x7F:
            out.append(ch)
        elif cp < 0x80:
            out.append(f"\\x{cp:02x}")
        elif 0xD800 <= cp <= 0xDFFF:
            # Go strings are UTF-8; a lone surrogate has no encoding and \ud800 does not
            # compile.
            raise QuotingError(f"a lone surrogate (U+{cp:04X}) cannot be written as a Go string")
        elif cp < 0x10000:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(f"\\U{cp:08x}")
    out.append('"')
    return Code("".join(out))


# --- identifiers -----------------------------------------------------------------------


def _words(reason: str, text: str) -> dict[str, str]:
    return dict.fromkeys(text.split(), reason)


def _python_reserved() -> dict[str, str]:
    reserved = {n: "a Python builtin" for n in dir(builtins) if not n.startswith("_")}
    reserved.update(dict.fromkeys(keyword.softkwlist, "a Python soft keyword"))
    reserved.update(dict.fromkeys(keyword.kwlist, "a Python keyword"))
    return reserved


_JS_RESERVED = {
    **_words(
        "a TypeScript/JavaScript global the generated code relies on",
        "Array BigInt Boolean Buffer Date Error JSON Map Math Number Object Promise Proxy "
        "Reflect RegExp Set String Symbol TypeError WeakMap __dirname __filename __proto__ "
        "console exports module process require",
    ),
    **_words(
        "a TypeScript contextual keyword",
        "abstract accessor as asserts async constructor declare from get global infer is "
        "keyof namespace of out override readonly satisfies set type unique",
    ),
    **_words(
        "a TypeScript predefined type name",
        "any bigint boolean never number object string symbol unknown",
    ),
    **_words("a predeclared JavaScript value", "undefined NaN Infinity globalThis"),
    **_words("not bindable in strict mode", "arguments eval"),
    **_words(
        "a JavaScript strict-mode or future reserved word",
        "implements interface let package private protected public static yield enum await",
    ),
    **_words(
        "a JavaScript reserved word",
        "break case catch class const continue debugger default delete do else export "
        "extends false finally for function if import in instanceof new null return super "
        "switch this throw true try typeof var void while with",
    ),
}

_GO_RESERVED = {
    **_words("a special Go name (blank identifier, init, main)", "_ init main"),
    **_words(
        "a predeclared Go function",
        "append cap clear close complex copy delete imag len make max min new panic print "
        "println real recover",
    ),
    **_words("a predeclared Go constant or nil", "true false iota nil"),
    **_words(
        "a predeclared Go type",
        "any bool byte comparable complex64 complex128 error float32 float64 int int8 int16 "
        "int32 int64 rune string uint uint8 uint16 uint32 uint64 uintptr",
    ),
    **_words(
        "a Go keyword",
        "break case chan const continue default defer else fallthrough for func go goto if "
        "import interface map package range return select struct switch type var",
    ),
}

#: language -> {reserved name: why it is refused}
RESERVED: Mapping[str, Mapping[str, str]] = {
    "python": _python_reserved(),
    "typescript": _JS_RESERVED,
    "express": _JS_RESERVED,
    "go": _GO_RESERVED,
}


def identifier_problem(language: str, value: str) -> str | None:
    """Why ``value`` cannot name something in ``language``, or None when it can."""
    if not _IDENTIFIER.fullmatch(value):
        return f"not an identifier ({IDENTIFIER_RULE})"
    why = RESERVED[language].get(value)
    if why is not None:
        return why
    if value.startswith("__") and value.endswith("__"):
        return "a dunder name (reserved for the language's own use)"
    return None


def _ident_filter(language: str) -> Filter:
    def ident(value: object) -> Code:
        problem = identifier_problem(language, _require_str(value, "ident", language))
        if problem is not None:
            raise QuotingError(f"{value!r} cannot be a {language} identifier: {problem}")
        return Code(value)

    return ident


# --- numbers and booleans --------------------------------------------------------------

_INT_RANGE = {
    "python": None,
    # Beyond 2**53 a JavaScript number is no longer the integer that was written.
    "typescript": (-(2**53 - 1), 2**53 - 1),
    "express": (-(2**53 - 1), 2**53 - 1),
    "go": (-(2**63), 2**63 - 1),
}


def _num_filter(language: str) -> Filter:
    bounds = _INT_RANGE[language]

    def num(value: object) -> Code:
        if type(value) is int:
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                raise QuotingError(
                    f"{value} does not fit a {language} integer ({bounds[0]}..{bounds[1]})"
                )
            return Code(str(value))
        if type(value) is float:
            if not math.isfinite(value):
                raise QuotingError(f"{value!r} has no {language} literal")
            # repr is the shortest text that reads back as the same double; its forms
            # (3600.0, 1e-05, 1e+16) are valid float literals in every target language.
            return Code(repr(value))
        raise QuotingError(
            f"the {language} 'num' filter takes an int or float, "
            f"got {type(value).__name__} {value!r}"
        )

    return num


def _bool_filter(language: str, true: str, false: str) -> Filter:
    def bool_(value: object) -> Code:
        _require(value, bool, "bool", language)
        return Code(true if value else false)

    return bool_


# --- our own multi-line text -----------------------------------------------------------


def _script_filter(language: str, open_: str, close: str, forbidden: tuple[str, ...]) -> Filter:
    def script(value: object) -> Code:
        if type(value) is not TrustedText:
            raise QuotingError(
                f"the {language} 'script' filter takes only the reference's own text "
                f"(TrustedText), got {type(value).__name__}; use 'str' for option values"
            )
        for bad in forbidden:
            if bad in value:
                raise QuotingError(
                    f"script text contains {bad!r}, which would end or escape "
                    f"a {open_}...{close} {language} literal"
                )
        if any(not (ch.isprintable() or ch in "\n\t") for ch in value):
            raise QuotingError("script text contains control characters other than \\n and \\t")
        return Code(open_ + value + close)

    return script


def _filters(
    language: str, str_: Filter, true_false: tuple[str, str], script: Filter
) -> dict[str, Filter]:
    return {
        "str": str_,
        "ident": _ident_filter(language),
        "num": _num_filter(language),
        "bool": _bool_filter(language, *true_false),
        "script": script,
    }


# Python: a trailing " would merge with the closing quotes; CR is read back as LF.
_py_script = _script_filter("python", '"""', '"""', ('"""', "\\", "\r"))


def _python_script(value: object) -> Code:
    if type(value) is TrustedText and value.endswith('"'):
        raise QuotingError('script text ends with ", which would merge with the closing """')
    return _py_script(value)


# TS/JS: a backslash would be read as an escape inside a template literal.
_js_script = _script_filter("typescript/javascript", "`", "`", ("`", "${", "\\", "\r"))
# Go: raw strings drop CR.
_go_script = _script_filter("go", "`", "`", ("`", "\r"))

#: language -> filter name -> filter
FILTERS: Mapping[str, Mapping[str, Filter]] = {
    "python": _filters("python", _python_str, ("True", "False"), _python_script),
    "typescript": _filters("typescript", _js_str, ("true", "false"), _js_script),
    "express": _filters("express", _js_str, ("true", "false"), _js_script),
    "go": _filters("go", _go_str, ("true", "false"), _go_script),
}


def literal(language: str, value: str | int | float | bool) -> Code:
    """The literal of ``value`` in ``language`` (for headers): str, bool or num by type."""
    filters = FILTERS[language]
    if type(value) is str:
        return filters["str"](value)
    if type(value) is bool:
        return filters["bool"](value)
    return filters["num"](value)
