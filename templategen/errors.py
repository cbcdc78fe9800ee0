"""The one error hierarchy of the generator; each error carries the CLI's exit code.

The CLI catches :class:`TemplategenError` and nothing else: it prints the message and
exits with ``exit_code``. Third-party errors (Jinja, black, OSError) are translated into
this hierarchy where the generator calls them::

    TemplategenError                 1  base class
    ├── UsageError                   2  the request cannot be served as asked
    │   ├── UnknownPatternError         no such pattern (with "did you mean")
    │   ├── UnknownLanguageError        no such language, or none for this pattern yet
    │   ├── NotSupportedError           the language exists but cannot be checked yet
    │   ├── OptionError                 an option is unknown, of the wrong type or out of range
    │   ├── QuotingError                a value no literal or identifier of the language can hold
    │   └── OutputPathError             the output directory cannot be written
    ├── TemplateBugError             1  the templates folder is wrong, not the user's input
    │   ├── PatternDefinitionError      a pattern.toml is malformed
    │   └── RenderedCodeError           rendered text failed the language's parser/formatter
    ├── OutputDriftError             1  existing output differs; nothing written without --force
    ├── VerificationError            1  the behaviour suite failed (or has nothing to run)
    └── ToolMissingError             3  redis-server, node or go is not installed
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "NotSupportedError",
    "OptionError",
    "OutputDriftError",
    "OutputPathError",
    "PatternDefinitionError",
    "QuotingError",
    "RenderedCodeError",
    "TemplateBugError",
    "TemplategenError",
    "ToolMissingError",
    "UnknownLanguageError",
    "UnknownPatternError",
    "UsageError",
    "VerificationError",
]


class TemplategenError(Exception):
    """Base class of every error the generator raises on purpose."""

    exit_code: ClassVar[int] = 1


class UsageError(TemplategenError):
    """The command or API call asked for something that does not exist or is not allowed."""

    exit_code = 2


class UnknownPatternError(UsageError):
    """No pattern of that name."""


class UnknownLanguageError(UsageError):
    """No language of that name, or the pattern has no template for it yet."""


class NotSupportedError(UsageError):
    """The language is known but its output cannot be checked yet."""


class OptionError(UsageError):
    """An option value is invalid; the message names the option and what is allowed."""


class QuotingError(UsageError):
    """A value cannot be written as a literal or identifier of the target language."""


class OutputPathError(UsageError):
    """The output directory cannot be created or written."""


class TemplateBugError(TemplategenError):
    """The templates folder is wrong: a bug to fix here, not in the user's input."""


class PatternDefinitionError(TemplateBugError):
    """A pattern.toml is malformed; the message names the file and the key."""


class RenderedCodeError(TemplateBugError):
    """Rendered text failed its language's parser or formatter; shows the numbered text."""


class OutputDriftError(TemplategenError):
    """Files in the output directory differ from what would be rendered."""


class VerificationError(TemplategenError):
    """The behaviour suite failed, or had nothing to run."""


class ToolMissingError(TemplategenError):
    """An external tool the command needs (redis-server, node, go) is not installed."""

    exit_code = 3
