// What the HTTP adapters share (http-cache-headers, and cache-aside's Express middleware):
// a small Express app on a loopback port of its own, and one real request per step.
//
// The ops are specified under "ops" in templates/http-cache-headers/scenarios.json:
// `serve` routes {path, status?, headers?, body?} and `request` {method?, path,
// headers?} -> {status, headers, body}.

import { request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import express from "express";
import type { Request, RequestHandler, Response } from "express";

import type { Args } from "./adapter.js";

/** A scenario route: what the app answers on `path`. */
export interface Route {
  readonly path: string;
  readonly status: number;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: string;
  readonly raw: Args;
}

export function parseRoutes(args: Args): Map<string, Route> {
  if (!Array.isArray(args.routes)) {
    throw new Error("serve needs args.routes: a list of routes");
  }
  const routes = new Map<string, Route>();
  for (const raw of args.routes as Args[]) {
    const headers = (raw.headers ?? {}) as Record<string, unknown>;
    routes.set(String(raw.path), {
      path: String(raw.path),
      status: Number(raw.status ?? 200),
      headers: Object.entries(headers).map(([k, v]) => [k, String(v)] as const),
      body: String(raw.body ?? ""),
      raw,
    });
  }
  return routes;
}

/** The path of a request target, without its query. */
export function pathOf(url: string | undefined): string {
  const target = url ?? "/";
  const end = target.indexOf("?");
  return end < 0 ? target : target.slice(0, end);
}

/**
 * Answers with the route's status, headers (in order) and body through node's own
 * `res.end`, for every method: the app's response exactly as the scenario gives it,
 * with nothing of Express's own (no ETag, no freshness check of res.send). For HEAD the
 * body reaches the middleware too; node does not send it.
 */
export function answer(res: Response, route: Route, body: string = route.body): void {
  res.statusCode = route.status;
  for (const [name, value] of route.headers) {
    res.setHeader(name, value);
  }
  res.end(Buffer.from(body, "utf8"));
}

export function notFound(res: Response): void {
  res.statusCode = 404;
  res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end("no such route");
}

/** An Express app on 127.0.0.1, on a port of its own. */
export class AppServer {
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(
    middleware: readonly RequestHandler[],
    handle: (req: Request, res: Response) => void | Promise<void>,
  ): Promise<AppServer> {
    const app = express();
    for (const handler of middleware) {
      app.use(handler);
    }
    app.use((req, res, next) => {
      Promise.resolve(handle(req, res)).catch(next);
    });
    const server = await new Promise<Server>((resolve, reject) => {
      const listening = app.listen(0, "127.0.0.1", (error?: Error) =>
        error ? reject(error) : resolve(listening),
      );
    });
    return new AppServer(server, (server.address() as AddressInfo).port);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** One request on a new connection, closed afterwards. */
  request(args: Args): Promise<{ status: number; headers: Record<string, string>; body: string }> {
    const headers = Object.fromEntries(
      Object.entries((args.headers ?? {}) as Record<string, unknown>).map(([k, v]) => [
        k,
        String(v),
      ]),
    );
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          host: "127.0.0.1",
          port: this.port,
          method: String(args.method ?? "GET"),
          path: String(args.path),
          headers,
          agent: false,
          timeout: 10_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("error", reject);
          res.on("end", () => {
            const fields: Record<string, string> = {};
            const raw = res.rawHeaders;
            for (let i = 0; i + 1 < raw.length; i += 2) {
              const name = String(raw[i]).toLowerCase();
              const value = String(raw[i + 1]);
              fields[name] = name in fields ? `${fields[name]}, ${value}` : value;
            }
            resolve({
              status: res.statusCode ?? 0,
              headers: fields,
              body: Buffer.concat(chunks).toString("utf8"),
            });
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("request timed out")));
      req.on("error", reject);
      req.end();
    });
  }
}
