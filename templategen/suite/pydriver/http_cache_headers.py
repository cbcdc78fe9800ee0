"""Adapter: the http-cache-headers scenario ops onto the helpers and the WSGI middleware.

The ops, their arguments and values are specified once, for every language's driver,
under ``"ops"`` in templates/http-cache-headers/scenarios.json. Here: ``serve`` wraps a
small WSGI app (one route per scenario route, exact paths) in the middleware and serves
it with wsgiref on a loopback port; ``request`` is a real HTTP request to it through
http.client, one connection each; the pure ops call the helpers.

The reference is given the options explicitly (preset lifetimes, buffer limit, ETag
strength); a rendered file carries them as its defaults, so it is called without them
and the suite checks that the baked-in values are the ones asked for.
"""

from __future__ import annotations

import dataclasses
import http.client
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from types import ModuleType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

_NOT_FOUND = "404 Not Found", [("Content-Type", "text/plain; charset=utf-8")], b"no such route"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # stdout is the protocol's; a request log would only be noise on stderr


class _Server:
    """A wsgiref server on 127.0.0.1, on a port of its own, in a daemon thread."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.httpd: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
        self.port = self.httpd.server_port
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _route_app(routes: dict[str, dict[str, Any]]) -> Callable[..., Iterable[bytes]]:
    """Answers every method on a route with its status, headers and body (HEAD too:
    the middleware sees the body a GET would get, and the server does not send it)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        route = routes.get(environ.get("PATH_INFO", ""))
        if route is None:
            status, headers, body = _NOT_FOUND
        else:
            code = int(route.get("status", 200))
            status = f"{code} {HTTPStatus(code).phrase}"
            headers = [(str(k), str(v)) for k, v in route.get("headers", {}).items()]
            body = str(route.get("body", "")).encode("utf-8")
        start_response(status, headers)
        return [body]

    return app


def _response(conn: http.client.HTTPConnection) -> dict[str, Any]:
    response = conn.getresponse()
    body = response.read()
    headers: dict[str, str] = {}
    for name, value in response.getheaders():
        key = name.lower()
        # Repeated fields are one list (RFC 9110 §5.3), except Set-Cookie: no route has it.
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return {"status": response.status, "headers": headers, "body": body.decode("utf-8")}


class Adapter:
    def __init__(
        self, module: ModuleType, client: Any, options: dict[str, Any], driver: Any
    ) -> None:
        self.module = module
        self.options = options
        self.baked: bool = driver.baked
        # The reference keeps its own names; a rendered file uses the ones asked for.
        names = options if driver.baked else {}
        self.middleware_cls = getattr(module, names.get("class_name", "CacheHeadersMiddleware"))
        self.server: _Server | None = None

    # --- serve and request --------------------------------------------------------

    def _policy(self, route: dict[str, Any]) -> Any:
        kind = route.get("policy")
        if kind is None:
            return None
        m, o = self.module, self.options
        keys = route.get("surrogate_keys", [])
        if self.baked:
            presets: dict[str, Callable[[], Any]] = {
                "static_assets": m.static_assets,
                "public_api": m.public_api,
                "private_user_data": m.private_user_data,
                "cdn_catalog": lambda: m.cdn_catalog(keys),
            }
            return presets[kind]()
        presets = {
            "static_assets": lambda: m.static_assets(o["static_max_age"]),
            "public_api": lambda: m.public_api(
                max_age=o["max_age"], stale_while_revalidate=o["stale_while_revalidate"]
            ),
            "private_user_data": m.private_user_data,
            "cdn_catalog": lambda: m.cdn_catalog(
                keys, max_age=o["catalog_max_age"], s_maxage=o["catalog_s_maxage"]
            ),
        }
        return dataclasses.replace(presets[kind](), weak_etag=o["weak_etags"])

    def serve(self, args: dict[str, Any]) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        routes = {str(r["path"]): r for r in args["routes"]}
        policies = {path: self._policy(route) for path, route in routes.items()}
        kwargs: dict[str, Any] = {}
        if "max_buffer_bytes" in args:
            kwargs["max_buffer_bytes"] = args["max_buffer_bytes"]
        elif not self.baked:
            kwargs["max_buffer_bytes"] = self.options["max_buffer_bytes"]
        middleware = self.middleware_cls(
            _route_app(routes),
            lambda environ: policies.get(environ.get("PATH_INFO", "")),
            **kwargs,
        )
        self.server = _Server(middleware)

    def request(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.server is None:
            raise RuntimeError("request before serve: there is no server to ask")
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            headers = {str(k): str(v) for k, v in args.get("headers", {}).items()}
            conn.request(str(args.get("method", "GET")), str(args["path"]), headers=headers)
            return _response(conn)
        finally:
            conn.close()

    # --- the pure helpers ---------------------------------------------------------

    def _etag_or_none(self, value: str | None) -> Any:
        return None if value is None else self.module.EntityTag.parse(value)

    def call(self, op: str, args: dict[str, Any], loader: Any) -> Any:
        m = self.module
        if op == "serve":
            return self.serve(args)
        if op == "request":
            return self.request(args)
        if op == "etag":
            return str(m.make_etag(args["body"].encode("utf-8"), weak=args.get("weak", False)))
        if op == "match":
            return m.if_none_match_matches(
                args["if_none_match"],
                self._etag_or_none(args.get("etag")),
                exists=args.get("exists", True),
            )
        if op == "preconditions":
            last_modified = args.get("last_modified")
            return m.evaluate_preconditions(
                args["method"],
                if_none_match=args.get("if_none_match"),
                if_modified_since=args.get("if_modified_since"),
                etag=self._etag_or_none(args.get("etag")),
                last_modified=None if last_modified is None else m.parse_http_date(last_modified),
                exists=args.get("exists", True),
            )
        if op == "cache_control":
            return str(m.CacheControl(**args))
        if op == "merge_vary":
            return m.merge_vary(*args["values"])
        if op == "surrogate_key":
            return m.surrogate_key_header(args["keys"])
        raise ValueError(f"http-cache-headers has no op {op!r}")

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
