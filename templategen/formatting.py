"""Every rendered file passes its language's parser and formatter before it is written.

:data:`FORMATTERS` maps a language to a function that checks the rendered text and
returns it formatted; the returned text *is* the output. A failure is a template bug and
raises :class:`RenderedCodeError` with the rendered text, numbered. A language without an
entry cannot be rendered: it fails with "not yet supported" rather than passing unchecked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import black
from black.mode import TargetVersion
from black.report import NothingChanged

from .errors import NotSupportedError, RenderedCodeError
from .gotools import gofmt

__all__ = ["BLACK_MODE", "FORMATTERS", "check_and_format", "numbered"]

#: Pinned with black itself (pyproject.toml): the output is compared byte for byte.
BLACK_MODE = black.Mode(target_versions={TargetVersion.PY311}, line_length=88)

Formatter = Callable[[str, str], str]


def numbered(text: str, mark: int | None = None) -> str:
    """``text`` with line numbers; line ``mark`` (1-based) gets a ``>>`` in the margin."""
    return "\n".join(
        f"{'>>' if i == mark else '  '}{i:>5} | {line}"
        for i, line in enumerate(text.splitlines(), start=1)
    )


def _python(text: str, name: str) -> str:
    try:
        compile(text, name, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise RenderedCodeError(
            f"{name}: the rendered Python does not compile: {exc.msg} (line {exc.lineno})\n"
            + numbered(text, exc.lineno)
        ) from None
    try:
        # fast=False: black also checks that the AST is unchanged and that a second
        # pass changes nothing.
        formatted = black.format_file_contents(text, fast=False, mode=BLACK_MODE)
    except NothingChanged:
        formatted = text
    except Exception as exc:  # black raises several unrelated types; all mean "bug here"
        raise RenderedCodeError(
            f"{name}: black refused the rendered Python: {exc}\n" + numbered(text)
        ) from None
    return formatted


FORMATTERS: Mapping[str, Formatter] = {
    "python": _python,
    # gofmt only: go vet needs the module and its dependencies, so it runs where the
    # behaviour suite builds the file (templategen/suite/gotarget.py).
    "go": gofmt,
}


def check_and_format(language: str, text: str, name: str) -> str:
    """Check ``text`` with ``language``'s parser and return it formatted."""
    formatter = FORMATTERS.get(language)
    if formatter is None:
        raise NotSupportedError(
            f"{language} output is not yet supported: there is no {language} "
            "parser/formatter check in templategen/formatting.py, and unchecked code is "
            "never written"
        )
    return formatter(text, name)
