"""HTTP cache headers: real requests to a wsgiref server on loopback, plus unit tests of
the entity-tag parser, the Cache-Control builder, Vary merging and Surrogate-Key checks."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

import pytest
from hypothesis import given
from hypothesis import strategies as st
from templategen.reference.errors import ConfigurationError
from templategen.reference.http_cache_headers import (
    CacheControl,
    CacheHeadersMiddleware,
    CachePolicy,
    EntityTag,
    cdn_catalog,
    evaluate_preconditions,
    if_none_match_matches,
    make_etag,
    merge_vary,
    parse_entity_tag_list,
    parse_http_date,
    prefix_rules,
    private_user_data,
    public_api,
    static_assets,
    surrogate_key_header,
)

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


# --- entity-tags and If-None-Match ---------------------------------------------------

ETAG_TEXT = st.text(
    alphabet=st.sampled_from([chr(c) for c in [0x21, *range(0x23, 0x7F), 0x80, 0xFF]]),
    max_size=12,
)
ENTITY_TAGS = st.builds(EntityTag, ETAG_TEXT, weak=st.booleans())
SEPARATORS = st.sampled_from([",", ", ", " ,", "\t,\t", " , , "])


@given(st.lists(ENTITY_TAGS, max_size=8), st.data())
def test_entity_tag_lists_round_trip_through_formatting_and_parsing(
    tags: list[EntityTag], data: st.DataObject
) -> None:
    text = ""
    for i, tag in enumerate(tags):
        text += (data.draw(SEPARATORS) if i else data.draw(st.sampled_from(["", " "]))) + str(tag)
    assert parse_entity_tag_list(text + data.draw(st.sampled_from(["", " ", ","]))) == tuple(tags)


@given(st.one_of(st.text(), st.text(alphabet='W/" ,*\tab\x00\x7f\x80é')))
def test_parsing_arbitrary_text_never_raises(text: str) -> None:
    for tag in parse_entity_tag_list(text):
        assert isinstance(tag, EntityTag)
    if_none_match_matches(text, EntityTag("x"))
    EntityTag.parse(text)
    parse_http_date(text)


def test_malformed_members_are_skipped_and_well_formed_ones_kept() -> None:
    text = 'abc, "a b", W/"ok", "unterminated, *, "fine"x, "last"'
    assert parse_entity_tag_list(text) == (EntityTag("ok", weak=True), EntityTag("last"))


def test_comma_inside_a_quoted_entity_tag_is_part_of_it() -> None:
    assert parse_entity_tag_list('"a,b", "c"') == (EntityTag("a,b"), EntityTag("c"))
    assert not if_none_match_matches('"a,b"', EntityTag("a"))


def test_star_matches_only_an_existing_representation() -> None:
    assert if_none_match_matches(" * ", None)
    assert not if_none_match_matches("*", EntityTag("x"), exists=False)
    assert not if_none_match_matches('*, "x"', EntityTag("y"))  # '*' in a list is malformed


def test_entity_tag_refuses_text_with_quote_or_space() -> None:
    for text in ['a"b', "a b", "\x7f"]:
        with pytest.raises(ConfigurationError, match="entity-tag"):
            EntityTag(text)


def test_make_etag_formats_strong_and_weak_tags() -> None:
    assert str(make_etag(b"")) == '"47DEQpj8HBSa-_TImW-5JA"'
    assert str(make_etag(b"", weak=True)) == 'W/"47DEQpj8HBSa-_TImW-5JA"'


def test_entity_tag_parse_reads_one_etag_header() -> None:
    assert EntityTag.parse(' W/"x" ') == EntityTag("x", weak=True)
    assert EntityTag.parse("x") is None


# --- preconditions and dates --------------------------------------------------------

LM = datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)


def test_unsafe_method_with_matching_if_none_match_gets_412_from_the_helper() -> None:
    assert evaluate_preconditions("PUT", if_none_match="*", etag=EntityTag("v")) == 412
    assert evaluate_preconditions("PUT", if_none_match="*", exists=False) is None
    assert evaluate_preconditions("GET", if_none_match='W/"v"', etag=EntityTag("v")) == 304


def test_if_modified_since_counts_only_for_get_and_head() -> None:
    ims = LAST_MODIFIED
    assert evaluate_preconditions(
        "HEAD", if_none_match=None, if_modified_since=ims, last_modified=LM
    )
    kwargs = {"if_none_match": None, "if_modified_since": ims, "last_modified": LM}
    assert evaluate_preconditions("POST", **kwargs) is None  # type: ignore[arg-type]
    assert evaluate_preconditions("get", **kwargs) is None  # type: ignore[arg-type]


def test_invalid_if_modified_since_is_ignored() -> None:
    for ims in ["yesterday", f"{LAST_MODIFIED}, {LAST_MODIFIED}", "Sun, 31 Feb 1994 08:49:37 GMT"]:
        assert (
            evaluate_preconditions(
                "GET", if_none_match=None, if_modified_since=ims, last_modified=LM
            )
            is None
        )


@pytest.mark.parametrize(
    "text",
    ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"],
)
def test_all_three_http_date_formats_parse(text: str) -> None:
    assert parse_http_date(text) == LM


def test_naive_last_modified_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        evaluate_preconditions(
            "GET",
            if_none_match=None,
            if_modified_since=LAST_MODIFIED,
            last_modified=LM.replace(tzinfo=None),
        )


# --- Cache-Control, Vary, Surrogate-Key ---------------------------------------------

CONFLICTS = [
    ({"public": True, "private": True, "max_age": 1}, "public", "private"),
    ({"private": True, "s_maxage": 1}, "private", "s-maxage"),
    *[
        ({"no_store": True, other: value}, "no-store", other.replace("_", "-"))
        for other, value in [
            ("public", True),
            ("no_cache", True),
            ("must_revalidate", True),
            ("max_age", 0),
            ("s_maxage", 0),
            ("stale_while_revalidate", 1),
            ("stale_if_error", 1),
            ("immutable", True),
        ]
    ],
    ({"no_cache": True, "immutable": True, "max_age": 1}, "no-cache", "immutable"),
    *[
        ({strict: True, stale: 5, "max_age": 1}, strict.replace("_", "-"), stale.replace("_", "-"))
        for strict in ("no_cache", "must_revalidate")
        for stale in ("stale_while_revalidate", "stale_if_error")
    ],
    ({"immutable": True}, "immutable", "max-age"),
    ({"stale_while_revalidate": 5}, "stale-while-revalidate", "max-age"),
    ({"stale_if_error": 5, "public": True}, "stale-if-error", "s-maxage"),
]


@pytest.mark.parametrize(("directives", "first", "second"), CONFLICTS, ids=str)
def test_cache_control_refuses_each_contradiction_naming_both_directives(
    directives: dict[str, object], first: str, second: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        CacheControl(**directives)  # type: ignore[arg-type]
    assert first in str(refused.value)
    assert second in str(refused.value)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "60"])
def test_cache_control_refuses_deltas_that_are_not_whole_seconds(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="max-age must be a whole number"):
        CacheControl(max_age=bad)  # type: ignore[arg-type]


def test_cache_control_refuses_flags_that_are_not_booleans_and_an_empty_header() -> None:
    with pytest.raises(ConfigurationError, match="no-cache must be True or False"):
        CacheControl(no_cache="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="at least one directive"):
        CacheControl()


def test_cache_control_writes_directives_in_fixed_order() -> None:
    everything = CacheControl(
        public=True, must_revalidate=True, max_age=0, s_maxage=2, immutable=True
    )
    assert str(everything) == "public, must-revalidate, max-age=0, s-maxage=2, immutable"
    relaxed = CacheControl(max_age=60, stale_while_revalidate=30, stale_if_error=600)
    assert str(relaxed) == "max-age=60, stale-while-revalidate=30, stale-if-error=600"
    assert str(CacheControl(private=True, no_store=True)) == "private, no-store"
    assert str(CacheControl(max_age=0)) == "max-age=0"  # zero is a directive, not "unset"


def test_cache_policy_refuses_browser_only_directives_in_surrogate_control() -> None:
    with pytest.raises(ConfigurationError, match="Surrogate-Control cannot carry public"):
        CachePolicy(surrogate_control=CacheControl(public=True, max_age=5))
    with pytest.raises(ConfigurationError, match="Surrogate-Control cannot carry s-maxage"):
        CachePolicy(surrogate_control=CacheControl(s_maxage=0))


def test_cache_policy_refuses_bad_vary_names_and_one_string() -> None:
    with pytest.raises(ConfigurationError, match="field names"):
        CachePolicy(vary=("Accept Encoding",))
    with pytest.raises(ConfigurationError, match="not one string"):
        CachePolicy(vary="Accept-Encoding")  # type: ignore[arg-type]


def test_merge_vary_deduplicates_case_insensitively_keeping_first_spelling() -> None:
    assert merge_vary("Accept-Encoding, Cookie", "accept-encoding,Origin", None) == (
        "Accept-Encoding, Cookie, Origin"
    )
    assert merge_vary(None, " ,, ") == ""


def test_merge_vary_star_absorbs_everything() -> None:
    assert merge_vary("Accept-Encoding", "Cookie, *") == "*"


def test_surrogate_keys_are_deduplicated_and_space_separated() -> None:
    assert surrogate_key_header(["catalog", "product:1", "catalog"]) == "catalog product:1"


@pytest.mark.parametrize("key", ["", "two words", "tab\there", "nl\n", "nul\x00", "del\x7f", "é"])
def test_surrogate_key_with_whitespace_control_or_non_ascii_is_refused(key: str) -> None:
    with pytest.raises(ConfigurationError, match="surrogate key"):
        surrogate_key_header(["ok", key])


def test_surrogate_keys_given_as_one_string_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="not one string"):
        cdn_catalog("catalog products")
