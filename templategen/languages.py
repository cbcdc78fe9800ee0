"""The target languages: each one's template file name and comment syntax.

Filters live in :mod:`.quoting`, formatters in :mod:`.formatting`; both are keyed by the
names here. Adding a language starts with an entry in :data:`LANGUAGES`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from .errors import UnknownLanguageError

__all__ = ["LANGUAGES", "Language", "get_language", "suggest"]


@dataclass(frozen=True, slots=True)
class Language:
    name: str
    #: The template file in a pattern folder; its presence means "supported".
    template: str
    #: Line-comment prefix for the header (line comments: nothing in a value can end them
    #: early once it is escaped, unlike ``*/`` in a block comment).
    comment: str


LANGUAGES: dict[str, Language] = {
    lang.name: lang
    for lang in (
        Language("python", "python.py.j2", "#"),
        Language("typescript", "typescript.ts.j2", "//"),
        Language("go", "go.go.j2", "//"),
        Language("express", "express.js.j2", "//"),
    )
}


def suggest(word: str, candidates: list[str]) -> str:
    """`` (did you mean 'x'?)`` when ``word`` is close to one of ``candidates``, else ``""``."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def get_language(name: str) -> Language:
    """The language called ``name``; a near miss gets "did you mean"."""
    try:
        return LANGUAGES[name]
    except KeyError:
        known = sorted(LANGUAGES)
        raise UnknownLanguageError(
            f"unknown language {name!r}{suggest(name, known)}; languages: {', '.join(known)}"
        ) from None
