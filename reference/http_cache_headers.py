"""HTTP cache headers: ETags, conditional GETs, Cache-Control, Vary and surrogate keys.

The pattern: the origin tells every cache on the way (browser, CDN, proxy) how long a
response may be reused (Cache-Control), what it depends on (Vary) and how to check it is
still current (ETag, Last-Modified), and answers a matching conditional GET with a
body-less 304. Surrogate-Key tags let a CDN purge every response about one thing at once.
The helpers here are framework-neutral; :class:`CacheHeadersMiddleware` (in
:mod:`.http_cache_middleware`, re-exported here) applies them to a WSGI app with a
:class:`CachePolicy` per route (one policy, a function of the environ, or
:func:`prefix_rules`); :func:`static_assets`, :func:`public_api`,
:func:`private_user_data` and :func:`cdn_catalog` are the design's route kinds.

Guarantees
    * If-None-Match per RFC 9110 §13.1.2: a list of quoted entity-tags (commas allowed
      inside the quotes), weak comparison, ``*``. Malformed members are skipped, never
      matched; no parser here raises.
    * If-Modified-Since (any of the three HTTP-date formats) counts only for GET and HEAD
      and only without If-None-Match; an invalid date is ignored.
    * 304 only for GET and HEAD, only in place of a 200. It carries the 200's
      Cache-Control, Content-Location, Date, ETag, Expires, Last-Modified, Vary and
      Surrogate-* fields (those set) and nothing else: no body, no Content-Length (a
      server may add its own; wsgiref adds ``Content-Length: 0``).
    * Vary is merged with the app's, never replaced (case-insensitive, first spelling
      kept, ``*`` absorbs all); Surrogate-Key lists are merged; the app's own
      Cache-Control and Surrogate-Control win over the policy's.
    * :class:`CacheControl` refuses contradictory or meaningless sets, naming both
      directives (``_CONFLICTS`` lists them with the reason).

The middleware answers 304 for GET and HEAD only, and generates an ETag only for a 200
whose body fits ``max_buffer_bytes``; its module docstring has the details.

Failure modes: no Redis and no state, so nothing to go down. Malformed request validators
count as absent or non-matching: the cost is a full 200, never a wrong 304. If the app or
its body iterator raises, the app's iterable is closed and the error propagates.

Not done: no cache of its own (it only emits headers and answers conditionals); no Range,
If-Range, If-Match or If-Unmodified-Since; no ASGI variant. Generated ETags hash the bytes
the app emits: a compressing layer outside this one must change or weaken them.

Wire format (other languages match it): ETag = ``"`` + unpadded base64url of the first 16
bytes of SHA-256(body) + ``"`` (22 characters between the quotes), weak with ``W/`` in
front. Cache-Control directives in the order of ``_DIRECTIVES``, joined by ``", "``;
Vary joined by ``", "``; Surrogate-Key by one space; Last-Modified is the app's.

Deviations from the design page: it compares If-None-Match with ``===`` (lists, weak tags
and ``*`` never match; If-Modified-Since is never looked at), sends 304 without its cache
headers and overwrites Vary. Its private route's ``must-revalidate`` adds nothing to
``no-cache`` and is dropped; its catalog's ``s-maxage=600, max-age=300`` comes out in the
fixed order as ``public, max-age=300, s-maxage=600``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .http_cache_middleware import CacheHeadersMiddleware, PolicyFor, prefix_rules

__all__ = [
    "CacheControl",
    "CacheHeadersMiddleware",
    "CachePolicy",
    "EntityTag",
    "PolicyFor",
    "cdn_catalog",
    "evaluate_preconditions",
    "if_none_match_matches",
    "make_etag",
    "merge_vary",
    "parse_entity_tag_list",
    "parse_http_date",
    "prefix_rules",
    "private_user_data",
    "public_api",
    "static_assets",
    "surrogate_key_header",
]

_ETAGC = "\x21\x23-\x7e\x80-\xff"  # RFC 9110 etagc: visible ASCII but '"', and obs-text
_OPAQUE = re.compile(f"[{_ETAGC}]*")
_SINGLE_ETAG = re.compile(f'[ \t]*(W/)?"([{_ETAGC}]*)"[ \t]*')
_LIST_MEMBER = re.compile(f'(W/)?"([{_ETAGC}]*)"[ \t]*(?:,|\\Z)')
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SURROGATE_KEY = re.compile(r"[\x21-\x7e]+")
_SAFE_METHODS = ("GET", "HEAD")  # method names are case-sensitive (RFC 9110 §9.1)


@dataclass(frozen=True, slots=True)
class EntityTag:
    """An entity-tag (RFC 9110 §8.8.3); ``opaque`` is the text between the quotes."""

    opaque: str
    weak: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.opaque, str) or not _OPAQUE.fullmatch(self.opaque):
            raise ConfigurationError(
                f"entity-tag text {self.opaque!r} is invalid: allowed are visible ASCII "
                "characters other than '\"', and bytes 0x80-0xFF"
            )

    def __str__(self) -> str:
        return f'{"W/" if self.weak else ""}"{self.opaque}"'

    @classmethod
    def parse(cls, value: str) -> EntityTag | None:
        """One ``ETag`` field value, or None when it is malformed."""
        match = _SINGLE_ETAG.fullmatch(value)
        return None if match is None else cls(match[2], weak=match[1] is not None)


def make_etag(body: bytes, *, weak: bool = False) -> EntityTag:
    """The ETag of ``body``: base64url of the first 16 bytes of its SHA-256."""
    digest = hashlib.sha256(body).digest()[:16]
    return EntityTag(base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"), weak=weak)


def parse_entity_tag_list(value: str) -> tuple[EntityTag, ...]:
    """The well-formed entity-tags of a list such as ``If-None-Match``; the rest is skipped."""
    tags: list[EntityTag] = []
    pos = 0
    while pos < len(value):
        if value[pos] in " \t,":  # empty list elements are legal (RFC 9110 §5.6.1)
            pos += 1
            continue
        match = _LIST_MEMBER.match(value, pos)
        if match is not None:
            tags.append(EntityTag(match[2], weak=match[1] is not None))
            pos = match.end()
            continue
        # A malformed member is dropped up to the next comma: it may cost a 304, never
        # cause a wrong one.
        comma = value.find(",", pos)
        if comma < 0:
            break
        pos = comma + 1
    return tuple(tags)


def if_none_match_matches(field_value: str, etag: EntityTag | None, *, exists: bool = True) -> bool:
    """Whether ``If-None-Match`` matches (its condition is false): weak comparison, or ``*``."""
    if field_value.strip(" \t") == "*":
        return exists
    if etag is None:
        return False
    return any(tag.opaque == etag.opaque for tag in parse_entity_tag_list(field_value))


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_IMF_FIXDATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT",
    re.ASCII,
)
_RFC850_DATE = re.compile(
    r"(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, (\d\d)-([A-Z][a-z]{2})-(\d\d) "
    r"(\d\d):(\d\d):(\d\d) GMT",
    re.ASCII,
)
_ASCTIME_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\d{4})",
    re.ASCII,
)


def parse_http_date(value: str) -> datetime | None:
    """An HTTP-date in any of its three formats (RFC 9110 §5.6.7) as UTC, or None."""
    value = value.strip(" \t")
    if match := _IMF_FIXDATE.fullmatch(value):
        day, month, year, hour, minute, second = match.groups()
    elif match := _ASCTIME_DATE.fullmatch(value):
        month, day, hour, minute, second, year = match.groups()
    elif match := _RFC850_DATE.fullmatch(value):
        day, month, short_year, hour, minute, second = match.groups()
        # A two-digit year more than 50 years ahead means the century before.
        this_year = datetime.now(UTC).year
        full_year = this_year // 100 * 100 + int(short_year)
        year = str(full_year - 100 if full_year > this_year + 50 else full_year)
    else:
        return None
    if month not in _MONTHS:
        return None
    numbers = (int(year), _MONTHS.index(month) + 1, int(day), int(hour), int(minute))
    try:
        return datetime(*numbers, int(second), tzinfo=UTC)
    except ValueError:  # 31 Feb, second 60, ...: not a date this module can compare
        return None


def evaluate_preconditions(
    method: str,
    *,
    if_none_match: str | None,
    if_modified_since: str | None = None,
    etag: EntityTag | None = None,
    last_modified: datetime | None = None,
    exists: bool = True,
) -> int | None:
    """RFC 9110 §13.2.2 steps 3-4: 304, 412, or None to carry on with the request.

    Call it only when the request would otherwise succeed (2xx), and for unsafe methods
    before changing any state: 412 means "do not perform the method".
    """
    if last_modified is not None and last_modified.tzinfo is None:
        raise ConfigurationError(f"last_modified must be timezone-aware, got {last_modified!r}")
    safe = method in _SAFE_METHODS
    if if_none_match is not None:
        if if_none_match_matches(if_none_match, etag, exists=exists):
            return 304 if safe else 412
        return None
    if not safe or if_modified_since is None or last_modified is None:
        return None
    since = parse_http_date(if_modified_since)
    if since is not None and last_modified.replace(microsecond=0) <= since:
        return 304
    return None


# (field, directive) in the order they are written.
_DIRECTIVES = (
    ("public", "public"),
    ("private", "private"),
    ("no_cache", "no-cache"),
    ("no_store", "no-store"),
    ("must_revalidate", "must-revalidate"),
    ("max_age", "max-age"),
    ("s_maxage", "s-maxage"),
    ("stale_while_revalidate", "stale-while-revalidate"),
    ("stale_if_error", "stale-if-error"),
    ("immutable", "immutable"),
)
_NAME = dict(_DIRECTIVES)
_DELTAS = ("max_age", "s_maxage", "stale_while_revalidate", "stale_if_error")
_NO_STORE_WHY = "no-store forbids storing, so rules for reusing a stored response mean nothing"
_NO_STALE_WHY = "{} forbids serving a stale response (RFC 9111 §4.2.4)"
# Pairs of directives refused together, and why.
_CONFLICTS: tuple[tuple[str, str, str], ...] = (
    ("public", "private", "a response is either shareable or for one user"),
    ("private", "s_maxage", "s-maxage is for shared caches, which private excludes"),
    *(
        ("no_store", other, _NO_STORE_WHY)
        for other in ("public", "no_cache", "must_revalidate", *_DELTAS, "immutable")
    ),
    ("no_cache", "immutable", "no-cache revalidates every use; immutable says never revalidate"),
    *(
        (strict, stale, _NO_STALE_WHY.format(_NAME[strict]))
        for strict in ("no_cache", "must_revalidate")
        for stale in _DELTAS[2:]
    ),
)


def _is_whole_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _directives_set(control: CacheControl) -> list[str]:
    # By identity, not equality: max-age=0 is set, though 0 == False.
    return [
        name
        for name, _ in _DIRECTIVES
        if getattr(control, name) is not None and getattr(control, name) is not False
    ]


@dataclass(frozen=True, kw_only=True)
class CacheControl:
    """A validated ``Cache-Control`` response header; ``str()`` gives the field value.

    Deltas are whole seconds >= 0. Refused together: public+private, private+s-maxage,
    no-store with anything but private, no-cache or must-revalidate with immutable or
    stale-*. immutable needs max-age; stale-* need max-age or s-maxage.
    """

    max_age: int | None = None
    s_maxage: int | None = None
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None
    public: bool = False
    private: bool = False
    no_cache: bool = False
    no_store: bool = False
    must_revalidate: bool = False
    immutable: bool = False

    def __post_init__(self) -> None:
        for name, directive in _DIRECTIVES:
            value = getattr(self, name)
            if name not in _DELTAS and not isinstance(value, bool):
                raise ConfigurationError(f"{directive} must be True or False, got {value!r}")
            if name in _DELTAS and value is not None and not _is_whole_number(value):
                raise ConfigurationError(
                    f"{directive} must be a whole number of seconds >= 0, got {value!r}"
                )
        on = set(_directives_set(self))
        if not on:
            raise ConfigurationError("Cache-Control needs at least one directive")
        for first, second, why in _CONFLICTS:
            if first in on and second in on:
                raise ConfigurationError(
                    f"Cache-Control cannot combine {_NAME[first]} with {_NAME[second]}: {why}"
                )
        if self.immutable and self.max_age is None:
            raise ConfigurationError(
                "Cache-Control immutable needs max-age: it only spares revalidation while fresh"
            )
        for stale in _DELTAS[2:]:
            if stale in on and self.max_age is None and self.s_maxage is None:
                raise ConfigurationError(
                    f"Cache-Control {_NAME[stale]} needs max-age or s-maxage to be stale after"
                )

    def __str__(self) -> str:
        return ", ".join(
            _NAME[name] if name not in _DELTAS else f"{_NAME[name]}={getattr(self, name)}"
            for name in _directives_set(self)
        )


def merge_vary(*values: str | None) -> str:
    """Vary field values merged: case-insensitive de-duplication, ``*`` absorbs the rest."""
    names: dict[str, str] = {}
    for value in values:
        for member in (value or "").split(","):
            name = member.strip(" \t")
            if name == "*":
                return "*"
            if name:
                names.setdefault(name.lower(), name)
    return ", ".join(names.values())


def surrogate_key_header(keys: Iterable[str]) -> str:
    """A ``Surrogate-Key`` value: the keys, validated and de-duplicated, space-separated."""
    if isinstance(keys, str):
        raise ConfigurationError(
            f"surrogate keys must be a collection of keys, not one string: {keys!r}"
        )
    unique: dict[str, None] = {}
    for key in keys:
        if not isinstance(key, str) or not _SURROGATE_KEY.fullmatch(key):
            raise ConfigurationError(
                f"surrogate key {key!r} is invalid: a key is one or more visible ASCII "
                "characters, with no whitespace or control characters"
            )
        unique[key] = None
    return " ".join(unique)


_SURROGATE_CONTROL_FIELDS = {"max_age", "stale_while_revalidate", "stale_if_error", "no_store"}


@dataclass(frozen=True, kw_only=True)
class CachePolicy:
    """What the middleware adds to a route's responses.

    ``surrogate_control`` may use only max-age, stale-while-revalidate, stale-if-error
    and no-store. ``etag``: generate one when the app sets none.
    """

    cache_control: CacheControl | None = None
    vary: tuple[str, ...] = ()
    surrogate_keys: tuple[str, ...] = ()
    surrogate_control: CacheControl | None = None
    etag: bool = True
    weak_etag: bool = False

    def __post_init__(self) -> None:
        for name in ("vary", "surrogate_keys"):
            if isinstance(getattr(self, name), str):
                raise ConfigurationError(f"{name} must be a tuple of names, not one string")
        bad_vary = [name for name in self.vary if name != "*" and not _TOKEN.fullmatch(name)]
        if bad_vary:
            raise ConfigurationError(f"vary names must be header field names, got {bad_vary!r}")
        surrogate_key_header(self.surrogate_keys)
        if self.surrogate_control is not None:
            extra = set(_directives_set(self.surrogate_control)) - _SURROGATE_CONTROL_FIELDS
            if extra:
                raise ConfigurationError(
                    f"Surrogate-Control cannot carry {', '.join(sorted(_NAME[e] for e in extra))}: "
                    "allowed are max-age, stale-while-revalidate, stale-if-error and no-store"
                )


def static_assets(max_age: int = 31_536_000) -> CachePolicy:
    """Fingerprinted static files: ``public, max-age=31536000, immutable``, no ETag hashing."""
    return CachePolicy(
        cache_control=CacheControl(public=True, max_age=max_age, immutable=True), etag=False
    )


def public_api(
    *,
    max_age: int = 300,
    stale_while_revalidate: int = 60,
    vary: tuple[str, ...] = ("Accept-Encoding",),
) -> CachePolicy:
    """A public API response: ``public, max-age=300, stale-while-revalidate=60`` and an ETag."""
    return CachePolicy(
        cache_control=CacheControl(
            public=True, max_age=max_age, stale_while_revalidate=stale_while_revalidate
        ),
        vary=vary,
    )


def private_user_data() -> CachePolicy:
    """Per-user data: ``private, no-cache``; the ETag makes each revalidation cheap."""
    return CachePolicy(cache_control=CacheControl(private=True, no_cache=True))


def cdn_catalog(
    surrogate_keys: Iterable[str], *, max_age: int = 300, s_maxage: int = 600
) -> CachePolicy:
    """CDN-cached and purged by key: ``public, max-age=300, s-maxage=600`` + Surrogate-Key."""
    surrogate_key_header(surrogate_keys)  # refuses one bare string before tuple() splits it
    return CachePolicy(
        cache_control=CacheControl(public=True, max_age=max_age, s_maxage=s_maxage),
        surrogate_keys=tuple(surrogate_keys),
    )


_MIDDLEWARE_NAMES = frozenset({"CacheHeadersMiddleware", "PolicyFor", "prefix_rules"})


def __getattr__(name: str) -> object:
    # The middleware module imports this one, so it is re-exported lazily: an import at
    # the top here would fail whenever http_cache_middleware is imported first.
    if name in _MIDDLEWARE_NAMES:
        from . import http_cache_middleware

        return getattr(http_cache_middleware, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
