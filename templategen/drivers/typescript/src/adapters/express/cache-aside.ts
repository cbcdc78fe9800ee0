// Adapter: the Express cache-aside onto the scenario ops. The cache and manager ops (get,
// set, delete, delete_pattern, call, invalidate, invalidate_all) are the TypeScript
// file's and go to its adapter unchanged; the response cache adds (specified under
// "ops" in templates/cache-aside/scenarios.json):
//
// - serve_cached {routes, vary?, max_body_bytes?}: an Express app (http.ts) with the
//   manager's cacheResponses() in front of every route, built with the rendered
//   defaults plus vary / maxBodyBytes when given. A route answers like http-cache-headers'
//   routes, except that it first calls the request step's loader (counted, gateable):
//   a string it returns is the body.
// - request {method?, path, headers?} with an optional loader: a real HTTP request.
// - invalidate_path {path}: the middleware's invalidate(path), the count removed.

import type { RequestHandler } from "express";

import {
  exportedClass,
  required,
  type Adapter,
  type AdapterContext,
  type Args,
  type DriverClient,
} from "../../adapter.js";
import type { Loader } from "../../loaders.js";
import { AppServer, answer, notFound, parseRoutes } from "../../http.js";
import { createAdapter as createCacheAdapter } from "../cache-aside.js";

interface CachedResponses extends RequestHandler {
  invalidate(path: string): Promise<number>;
  invalidateAll(): Promise<number>;
}

interface Manager {
  cacheResponses(options: Record<string, unknown>): CachedResponses;
}

// Which step's loader a request runs: the request carries its number in this header
// (not in `vary`, so not in the cache key), so concurrent requests keep their own.
const LOADER_HEADER = "x-suite-loader";

class ExpressCacheAsideAdapter implements Adapter {
  private readonly cache: Adapter;
  private readonly manager: Manager;
  private readonly client: DriverClient;
  private server: AppServer | null = null;
  private middleware: CachedResponses | null = null;
  private readonly loaders = new Map<string, Loader>();
  private nextLoader = 0;

  constructor(context: AdapterContext) {
    this.cache = createCacheAdapter(context);
    this.client = context.client;
    this.manager = new (exportedClass<Manager>(
      context.module,
      context.options.manager_class_name,
    ))(context.client);
  }

  private async serve(args: Args): Promise<null> {
    await this.closeServer();
    const routes = parseRoutes(args);
    const options: Record<string, unknown> = {};
    if (args.vary !== undefined) {
      options.vary = args.vary;
    }
    if (args.max_body_bytes !== undefined) {
      options.maxBodyBytes = args.max_body_bytes;
    }
    const middleware = this.manager.cacheResponses(options);
    this.middleware = middleware;
    this.server = await AppServer.start([middleware], async (req, res) => {
      const route = routes.get(req.path);
      if (route === undefined) {
        notFound(res);
        return;
      }
      const loader = this.loaders.get(String(req.get(LOADER_HEADER)));
      const value = loader === undefined ? null : await loader();
      answer(res, route, typeof value === "string" ? value : route.body);
    });
    return null;
  }

  private async request(args: Args, loader: Loader | undefined): Promise<unknown> {
    if (this.server === null) {
      throw new Error("request before serve_cached: there is no server to ask");
    }
    const id = String(this.nextLoader++);
    if (loader !== undefined) {
      this.loaders.set(id, loader);
    }
    const headers = { ...((args.headers ?? {}) as Record<string, unknown>), [LOADER_HEADER]: id };
    try {
      const response = await this.server.request({ ...args, headers });
      // The middleware stores (or releases its lease) when the response has gone out,
      // on this same Redis connection: one PING waits for those commands, a second for
      // the EVALs that a NOSCRIPT reply to them sent on. The runner's next look at Redis
      // then sees the outcome, not a race with it.
      await this.client.sendCommand(["PING"]);
      await this.client.sendCommand(["PING"]);
      return response;
    } finally {
      this.loaders.delete(id);
    }
  }

  async call(op: string, args: Args, loader: Loader | undefined): Promise<unknown> {
    switch (op) {
      case "serve_cached":
        return await this.serve(args);
      case "request":
        return await this.request(args, loader);
      case "invalidate_path":
        if (this.middleware === null) {
          throw new Error("invalidate_path before serve_cached");
        }
        return await this.middleware.invalidate(String(required(args, "path")));
    }
    return await this.cache.call(op, args, loader);
  }

  private async closeServer(): Promise<void> {
    const server = this.server;
    this.server = null;
    await server?.close();
  }

  async close(): Promise<void> {
    await this.closeServer();
    await this.cache.close();
  }
}

export function createAdapter(context: AdapterContext): Adapter {
  return new ExpressCacheAsideAdapter(context);
}
