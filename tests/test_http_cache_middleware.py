"""The WSGI middleware of the HTTP cache headers pattern: real requests to a wsgiref
server on loopback, then the middleware called directly for what a server would hide."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import threading
from collections.abc import Iterable, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

import pytest
from templategen.reference import http_cache_headers
from templategen.reference.errors import ConfigurationError
from templategen.reference.http_cache_headers import (
    CacheControl,
    CachePolicy,
    cdn_catalog,
    private_user_data,
    public_api,
    static_assets,
)
from templategen.reference.http_cache_middleware import CacheHeadersMiddleware, prefix_rules

PRODUCT = json.dumps({"id": 1, "name": "kettle", "price": 30}).encode()
LAST_MODIFIED = "Sun, 06 Nov 1994 08:49:37 GMT"
BIG = b"x" * 5000  # above the test server's max_buffer_bytes


def demo_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The design's routes, plus a few that exercise the middleware's edges."""
    path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
    headers = [("Content-Type", "application/json")]
    body = PRODUCT
    if path == "/api/products/1":
        headers += [("Vary", "Accept-Language, accept-encoding"), ("Last-Modified", LAST_MODIFIED)]
        headers += [("Content-Length", str(len(PRODUCT)))]
    elif path == "/api/products/tagged":
        headers += [("ETag", 'W/"v7"'), ("Cache-Control", "public, max-age=5")]
    elif path == "/api/products/no-store":
        headers += [("Cache-Control", "private, no-store")]
    elif path == "/api/products/big":
        body = BIG
    elif path == "/api/products/missing":
        start_response("404 Not Found", headers)
        return [b"{}"]
    elif path == "/api/products/lazy":
        return _lazy_body(start_response, headers)
    start_response("200 OK", headers)
    return [] if method == "HEAD" and path == "/api/products/empty-head" else [body[:10], body[10:]]


def _lazy_body(start_response: StartResponse, headers: list[tuple[str, str]]) -> Iterator[bytes]:
    start_response("200 OK", headers)  # called on the first next(), not by the app call
    yield PRODUCT


ROUTES = prefix_rules(
    {
        "/static": static_assets(),
        "/api/products": public_api(),
        "/api/user": private_user_data(),
        "/api/catalog": cdn_catalog(["catalog", "products"]),
    }
)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[WSGIServer]:
    app = CacheHeadersMiddleware(demo_app, ROUTES, max_buffer_bytes=4096)
    httpd = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def fetch(
    server: WSGIServer, path: str, method: str = "GET", **headers: str
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
    try:
        conn.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def expected_etag(body: bytes) -> str:
    digest = hashlib.sha256(body).digest()[:16]
    return '"' + base64.urlsafe_b64encode(digest).rstrip(b"=").decode() + '"'


# --- over HTTP ----------------------------------------------------------------------


def test_get_returns_200_with_body_and_etag_of_its_bytes(server: WSGIServer) -> None:
    status, headers, body = fetch(server, "/api/products/1")
    assert (status, body) == (200, PRODUCT)
    assert headers["ETag"] == expected_etag(PRODUCT)
    assert len(headers["ETag"]) == 24


def test_matching_member_of_if_none_match_list_gets_304(server: WSGIServer) -> None:
    listed = f'"nope", W/"old,version", {expected_etag(PRODUCT)} , "other"'
    status, _, body = fetch(server, "/api/products/1", If_None_Match=listed)
    assert (status, body) == (304, b"")


def test_if_none_match_split_over_two_header_lines_still_matches(server: WSGIServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
    try:
        conn.putrequest("GET", "/api/products/1")
        conn.putheader("If-None-Match", '"first"')
        conn.putheader("If-None-Match", expected_etag(PRODUCT))
        conn.endheaders()
        assert conn.getresponse().status == 304
    finally:
        conn.close()


def test_weak_if_none_match_matches_strong_etag(server: WSGIServer) -> None:
    status, _, _ = fetch(server, "/api/products/1", If_None_Match="W/" + expected_etag(PRODUCT))
    assert status == 304


def test_if_none_match_on_the_apps_weak_etag_gets_304(server: WSGIServer) -> None:
    status, headers, _ = fetch(server, "/api/products/tagged", If_None_Match='"v7"')
    assert status == 304
    assert headers["ETag"] == 'W/"v7"'  # the app's own ETag is kept, not replaced


def test_mismatching_if_none_match_gets_full_200(server: WSGIServer) -> None:
    status, _, body = fetch(server, "/api/products/1", If_None_Match='"stale", W/"older"')
    assert (status, body) == (200, PRODUCT)


def test_if_none_match_star_gets_304(server: WSGIServer) -> None:
    assert fetch(server, "/api/products/1", If_None_Match="*")[0] == 304


def test_head_gets_304_like_get(server: WSGIServer) -> None:
    status, headers, _ = fetch(
        server, "/api/products/1", "HEAD", If_None_Match=expected_etag(PRODUCT)
    )
    assert status == 304
    assert headers["ETag"] == expected_etag(PRODUCT)


def test_head_with_empty_body_gets_no_etag_that_would_differ_from_gets(server: WSGIServer) -> None:
    status, headers, _ = fetch(server, "/api/products/empty-head", "HEAD")
    assert status == 200
    assert headers["ETag"] is None


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_unsafe_method_with_matching_if_none_match_is_never_304(
    server: WSGIServer, method: str
) -> None:
    status, headers, body = fetch(server, "/api/products/1", method, If_None_Match="*")
    assert (status, body) == (200, PRODUCT)
    assert headers["Cache-Control"] is None  # passed through untouched


def test_304_carries_validators_and_cache_headers(server: WSGIServer) -> None:
    status, headers, _ = fetch(server, "/api/products/1", If_None_Match=expected_etag(PRODUCT))
    assert status == 304
    assert headers["ETag"] == expected_etag(PRODUCT)
    assert headers["Cache-Control"] == "public, max-age=300, stale-while-revalidate=60"
    assert headers["Vary"] == "Accept-Language, accept-encoding"
    assert headers["Last-Modified"] == LAST_MODIFIED
    assert headers["Content-Type"] is None


def test_304_sends_no_body_bytes_and_not_the_bodys_content_length(server: WSGIServer) -> None:
    # A raw socket sees every byte the server sends, which http.client would hide for a 304.
    request = (
        f"GET /api/products/1 HTTP/1.1\r\nHost: x\r\nIf-None-Match: {expected_etag(PRODUCT)}\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as sock:
        sock.sendall(request.encode())
        raw = b"".join(iter(lambda: sock.recv(4096), b""))
    head, _, after = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 304") or head.startswith(b"HTTP/1.1 304")
    assert after == b""
    assert f"Content-Length: {len(PRODUCT)}".encode() not in head


def test_if_modified_since_alone_gets_304_when_not_modified_since(server: WSGIServer) -> None:
    assert fetch(server, "/api/products/1", If_Modified_Since=LAST_MODIFIED)[0] == 304


def test_if_modified_since_before_last_modified_gets_200(server: WSGIServer) -> None:
    earlier = "Sat, 05 Nov 1994 08:49:37 GMT"
    assert fetch(server, "/api/products/1", If_Modified_Since=earlier)[0] == 200


def test_if_modified_since_is_ignored_when_if_none_match_is_present(server: WSGIServer) -> None:
    status, _, body = fetch(
        server, "/api/products/1", If_None_Match='"stale"', If_Modified_Since=LAST_MODIFIED
    )
    assert (status, body) == (200, PRODUCT)


def test_vary_is_merged_with_the_apps_vary_not_replaced(server: WSGIServer) -> None:
    _, headers, _ = fetch(server, "/api/products/1")
    assert headers.get_all("Vary") == ["Accept-Language, accept-encoding"]


def test_apps_own_cache_control_wins_over_the_routes(server: WSGIServer) -> None:
    _, headers, _ = fetch(server, "/api/products/tagged")
    assert headers.get_all("Cache-Control") == ["public, max-age=5"]


def test_no_store_response_gets_no_etag_and_never_304(server: WSGIServer) -> None:
    status, headers, body = fetch(server, "/api/products/no-store", If_None_Match="*")
    assert (status, body) == (200, PRODUCT)
    assert headers["ETag"] is None


def test_body_over_the_buffer_limit_streams_intact_without_etag(server: WSGIServer) -> None:
    status, headers, body = fetch(server, "/api/products/big")
    assert (status, body) == (200, BIG)
    assert headers["ETag"] is None


def test_app_calling_start_response_lazily_still_gets_etag_and_304(server: WSGIServer) -> None:
    assert fetch(server, "/api/products/lazy")[1]["ETag"] == expected_etag(PRODUCT)
    assert fetch(server, "/api/products/lazy", If_None_Match=expected_etag(PRODUCT))[0] == 304


def test_error_responses_do_not_get_the_routes_cache_control(server: WSGIServer) -> None:
    status, headers, _ = fetch(server, "/api/products/missing", If_None_Match="*")
    assert status == 404
    assert headers["Cache-Control"] is None


@pytest.mark.parametrize(
    ("path", "cache_control"),
    [
        ("/static/app.3f2a.js", "public, max-age=31536000, immutable"),
        ("/api/products/1", "public, max-age=300, stale-while-revalidate=60"),
        ("/api/user/profile", "private, no-cache"),
        ("/api/catalog", "public, max-age=300, s-maxage=600"),
    ],
)
def test_each_route_kind_sends_its_cache_control(
    server: WSGIServer, path: str, cache_control: str
) -> None:
    assert fetch(server, path)[1]["Cache-Control"] == cache_control


def test_catalog_route_sends_surrogate_keys_for_cdn_purges(server: WSGIServer) -> None:
    assert fetch(server, "/api/catalog")[1]["Surrogate-Key"] == "catalog products"


def test_static_route_does_not_hash_bodies(server: WSGIServer) -> None:
    assert fetch(server, "/static/app.3f2a.js")[1]["ETag"] is None


# --- the middleware without a server ------------------------------------------------


def test_304_built_by_the_middleware_has_no_content_length_and_keeps_surrogate_headers() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "2"), ("Set-Cookie", "a=b")])
        return [b"ok"]

    policy = CachePolicy(
        surrogate_keys=("k",), surrogate_control=CacheControl(max_age=60), vary=("Cookie",)
    )
    sent: list[tuple[str, list[tuple[str, str]]]] = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_IF_NONE_MATCH": "*"}
    body = CacheHeadersMiddleware(app, policy)(
        environ, lambda status, headers, exc_info=None: sent.append((status, headers)) or len
    )
    assert list(body) == []
    assert sent[0][0] == "304 Not Modified"
    assert dict(sent[0][1]) == {
        "ETag": expected_etag(b"ok"),
        "Vary": "Cookie",
        "Surrogate-Key": "k",
        "Surrogate-Control": "max-age=60",
    }


def test_304_closes_the_apps_iterable_without_reading_it() -> None:
    class Body:
        closed = read = False

        def __iter__(self) -> Iterator[bytes]:
            Body.read = True
            yield b"never"

        def close(self) -> None:
            Body.closed = True

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("ETag", '"v1"')])
        return Body()

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_IF_NONE_MATCH": '"v1"'}
    CacheHeadersMiddleware(app, CachePolicy())(environ, lambda *a: len)
    assert (Body.closed, Body.read) == (True, False)


def test_app_that_never_starts_a_response_gets_a_clear_error_and_its_body_closed() -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            return iter([b"orphan"])

        def close(self) -> None:
            closed.append(True)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return Body()

    with pytest.raises(RuntimeError, match="without calling start_response"):
        CacheHeadersMiddleware(app, CachePolicy())({"REQUEST_METHOD": "GET"}, lambda *a: len)
    assert closed == [True]


def test_prefix_rules_pick_the_longest_prefix_on_segment_boundaries() -> None:
    outer, inner = CachePolicy(), CachePolicy(etag=False)
    rules = prefix_rules({"/api": outer, "/api/user": inner})
    assert rules({"PATH_INFO": "/api/user/7"}) is inner
    assert rules({"PATH_INFO": "/api/users"}) is outer
    assert rules({"PATH_INFO": "/apis"}) is None


def test_prefix_rules_refuse_a_prefix_without_leading_slash() -> None:
    with pytest.raises(ConfigurationError, match="start with '/'"):
        prefix_rules({"static": static_assets()})


def test_middleware_is_still_importable_from_the_pattern_module() -> None:
    assert http_cache_headers.CacheHeadersMiddleware is CacheHeadersMiddleware
    assert http_cache_headers.prefix_rules is prefix_rules
    assert "CacheHeadersMiddleware" in http_cache_headers.__all__
