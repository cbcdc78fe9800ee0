"""The WSGI side of the HTTP cache headers pattern: :class:`CacheHeadersMiddleware`.

The pattern, its guarantees and its wire format are described in
:mod:`.http_cache_headers`, which holds the framework-neutral helpers this module applies
and re-exports everything here, so ``from ...http_cache_headers import
CacheHeadersMiddleware`` keeps working.

The middleware, for GET and HEAD only: it adds the route's :class:`CachePolicy` headers
to 2xx and 304 responses. A 200 without ``no-store`` and without an ETag of the app's has
its body buffered up to ``max_buffer_bytes`` (1 MiB) and hashed into one; a larger body
streams on without. A HEAD with an empty body gets none (it would not be the GET's). With
the app's own ETag nothing is buffered, and a 304 closes the app's iterable unread. Other
methods pass through untouched: a 412 must be decided before the app changes state, so
such an app calls :func:`evaluate_preconditions` itself.

The policy is one :class:`CachePolicy`, a function of the environ, or
:func:`prefix_rules` (the longest matching path prefix). If the app or its body iterator
raises, the app's iterable is closed and the error propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain
from typing import TYPE_CHECKING

from .errors import ConfigurationError
from .http_cache_headers import (
    _SAFE_METHODS,
    CachePolicy,
    EntityTag,
    _is_whole_number,
    evaluate_preconditions,
    make_etag,
    merge_vary,
    parse_http_date,
)

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from _typeshed import OptExcInfo

__all__ = ["CacheHeadersMiddleware", "PolicyFor", "prefix_rules"]

PolicyFor = Callable[["WSGIEnvironment"], CachePolicy | None]


def prefix_rules(rules: Mapping[str, CachePolicy], default: CachePolicy | None = None) -> PolicyFor:
    """Policy by the longest matching path prefix, on segment boundaries (/static ≠ /statics)."""
    for prefix in rules:
        if not prefix.startswith("/"):
            raise ConfigurationError(f"path prefixes must start with '/', got {prefix!r}")
    ordered = sorted(rules.items(), key=lambda item: len(item[0]), reverse=True)

    def policy_for(environ: WSGIEnvironment) -> CachePolicy | None:
        path = environ.get("PATH_INFO") or "/"
        for prefix, policy in ordered:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return policy
        return default

    return policy_for


# What a 304 keeps of its 200 (RFC 9110 §15.4.5, plus what guides cache updates).
_KEPT_ON_304 = frozenset(
    {"cache-control", "content-location", "date", "etag", "expires", "last-modified", "vary"}
    | {"surrogate-control", "surrogate-key"}
)
_Headers = list[tuple[str, str]]


def _get(headers: _Headers, name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name), None)


def _apply_policy(policy: CachePolicy, headers: _Headers) -> _Headers:
    merged = [(k, v) for k, v in headers if k.lower() not in ("vary", "surrogate-key")]
    if policy.cache_control is not None and _get(headers, "cache-control") is None:
        merged.append(("Cache-Control", str(policy.cache_control)))
    app_vary = [v for k, v in headers if k.lower() == "vary"]
    if vary := merge_vary(*app_vary, ", ".join(policy.vary)):
        merged.append(("Vary", vary))
    app_keys = [key for k, v in headers if k.lower() == "surrogate-key" for key in v.split()]
    if keys := " ".join(dict.fromkeys([*app_keys, *policy.surrogate_keys])):
        merged.append(("Surrogate-Key", keys))
    if policy.surrogate_control is not None and _get(headers, "surrogate-control") is None:
        merged.append(("Surrogate-Control", str(policy.surrogate_control)))
    return merged


def _has_no_store(cache_control: str | None) -> bool:
    directives = (
        part.split("=", 1)[0].strip().lower() for part in (cache_control or "").split(",")
    )
    return "no-store" in directives


class _Capture:
    """The start_response handed to the app: holds status and headers until we decide."""

    def __init__(self, start_response: StartResponse) -> None:
        self.server_start_response = start_response
        self.status: str | None = None
        self.headers: _Headers = []
        self.exc_info: OptExcInfo | None = None
        self.written: list[bytes] = []
        self.forwarded = False

    def __call__(
        self, status: str, headers: _Headers, exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        if self.forwarded:  # an error after the headers went out: the server decides
            return self.server_start_response(status, headers, exc_info)
        self.status, self.headers, self.exc_info = status, list(headers), exc_info
        return self.written.append

    def forward(self, status: str, headers: _Headers) -> None:
        self.forwarded = True
        self.server_start_response(status, headers, self.exc_info)


class _Body:
    """The chunks to send, closing the app's own iterable when the server closes us."""

    def __init__(self, chunks: Iterator[bytes], result: Iterable[bytes]) -> None:
        self._chunks, self._result = chunks, result

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        close = getattr(self._result, "close", None)
        if close is not None:
            close()


class CacheHeadersMiddleware:
    """Adds a route's cache headers and ETag to a WSGI app and answers 304s for it."""

    def __init__(
        self,
        app: WSGIApplication,
        policy: CachePolicy | PolicyFor,
        *,
        max_buffer_bytes: int = 1 << 20,
    ) -> None:
        if not _is_whole_number(max_buffer_bytes):
            raise ConfigurationError(
                f"max_buffer_bytes must be an int >= 0, got {max_buffer_bytes!r}"
            )
        self.app = app
        self.policy_for: PolicyFor = (
            (lambda _environ: policy) if isinstance(policy, CachePolicy) else policy
        )
        self.max_buffer_bytes = max_buffer_bytes

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        policy = self.policy_for(environ) if method in _SAFE_METHODS else None
        if policy is None:
            return self.app(environ, start_response)
        capture = _Capture(start_response)
        result = self.app(environ, capture)
        try:
            return self._respond(environ, method, policy, capture, result)
        except BaseException:
            _Body(iter(()), result).close()  # WSGI: the app's iterable is closed, always
            raise

    def _respond(
        self,
        environ: WSGIEnvironment,
        method: str,
        policy: CachePolicy,
        capture: _Capture,
        result: Iterable[bytes],
    ) -> Iterable[bytes]:
        rest = iter(result)
        chunks = capture.written
        while capture.status is None:  # an app may call start_response on its first chunk
            chunk = next(rest, None)
            if chunk is None:
                raise RuntimeError("the WSGI app returned its body without calling start_response")
            chunks.append(chunk)
        status, code = capture.status, int(capture.status[:3])
        headers = capture.headers
        if 200 <= code < 300 or code == 304:
            headers = _apply_policy(policy, headers)
        if code != 200 or _has_no_store(_get(headers, "cache-control")):
            capture.forward(status, headers)
            return _Body(chain(chunks, rest), result)

        etag_value = _get(headers, "etag")
        etag = EntityTag.parse(etag_value) if etag_value is not None else None
        if etag_value is None and policy.etag:
            size = sum(map(len, chunks))
            for chunk in rest:
                chunks.append(chunk)
                size += len(chunk)
                if size > self.max_buffer_bytes:
                    break
            else:  # the whole body is in hand
                if method == "GET" or size > 0:
                    etag = make_etag(b"".join(chunks), weak=policy.weak_etag)
                    headers.append(("ETag", str(etag)))

        last_modified = _get(headers, "last-modified")
        outcome = evaluate_preconditions(
            method,
            if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
            if_modified_since=environ.get("HTTP_IF_MODIFIED_SINCE"),
            etag=etag,
            last_modified=parse_http_date(last_modified) if last_modified else None,
        )
        if outcome == 304:
            _Body(rest, result).close()  # the rest of the body is never read
            kept = [(k, v) for k, v in headers if k.lower() in _KEPT_ON_304]
            capture.forward("304 Not Modified", kept)
            return []
        capture.forward(status, headers)
        return _Body(chain(chunks, rest), result)
