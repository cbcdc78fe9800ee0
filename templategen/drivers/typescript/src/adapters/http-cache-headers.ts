// Adapter: the http-cache-headers scenario ops onto the helpers and the middleware.
//
// The ops, their arguments and values are specified once, for every language's driver,
// under "ops" in templates/http-cache-headers/scenarios.json. Here `serve` puts the
// middleware in front of a small Express app (http.ts) on a loopback port, `request` is
// a real HTTP request to it, and the pure ops call the helpers. The same adapter drives
// the TypeScript file and the Express (JavaScript) one: their exports are the same.
//
// The rendered file carries the options as its defaults, so everything is called
// without them and the suite checks that the baked-in values are the ones asked for.

import type { IncomingMessage } from "node:http";

import type { RequestHandler } from "express";

import { exportedClass, required, type Adapter, type AdapterContext, type Args } from "../adapter.js";
import type { Loader } from "../loaders.js";
import { AppServer, answer, notFound, parseRoutes, pathOf, type Route } from "../http.js";

// The rendered API as this adapter uses it (checked at run time by the calls themselves).
interface EntityTag {
  toString(): string;
}
type Policy = object;
interface Middleware {
  readonly handler: RequestHandler;
}
interface HttpCacheHeaders {
  EntityTag: { parse(value: string): EntityTag | null };
  CacheControl: new (directives: Record<string, unknown>) => { toString(): string };
  makeEtag(body: Uint8Array, options: { weak?: boolean }): EntityTag;
  ifNoneMatchMatches(value: string, etag: EntityTag | null, options: { exists?: boolean }): boolean;
  evaluatePreconditions(method: string, conditions: Record<string, unknown>): number | null;
  parseHttpDate(value: string): Date | null;
  mergeVary(...values: Array<string | null>): string;
  surrogateKeyHeader(keys: Iterable<string>): string;
  staticAssets(): Policy;
  publicApi(): Policy;
  privateUserData(): Policy;
  cdnCatalog(keys: Iterable<string>): Policy;
}

/** snake_case scenario argument names to the camelCase of the rendered API. */
function camel(name: string): string {
  return name.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

class HttpCacheHeadersAdapter implements Adapter {
  private readonly api: HttpCacheHeaders;
  private readonly Middleware: new (policy: unknown, options?: object) => Middleware;
  private server: AppServer | null = null;

  constructor({ module, options }: AdapterContext) {
    this.api = module as unknown as HttpCacheHeaders;
    this.Middleware = exportedClass<Middleware>(module, options.class_name);
  }

  private policy(route: Route): Policy | null {
    const keys = (route.raw.surrogate_keys ?? []) as string[];
    switch (route.raw.policy) {
      case undefined:
      case null:
        return null;
      case "static_assets":
        return this.api.staticAssets();
      case "public_api":
        return this.api.publicApi();
      case "private_user_data":
        return this.api.privateUserData();
      case "cdn_catalog":
        return this.api.cdnCatalog(keys);
    }
    throw new Error(`unknown policy ${JSON.stringify(route.raw.policy)}`);
  }

  private async serve(args: Args): Promise<null> {
    await this.close();
    const routes = parseRoutes(args);
    const policies = new Map([...routes].map(([path, route]) => [path, this.policy(route)]));
    const given =
      args.max_buffer_bytes === undefined ? {} : { maxBufferBytes: args.max_buffer_bytes };
    const middleware = new this.Middleware(
      (req: IncomingMessage) => policies.get(pathOf(req.url)) ?? null,
      given,
    );
    this.server = await AppServer.start([middleware.handler], (req, res) => {
      const route = routes.get(req.path);
      if (route === undefined) {
        notFound(res);
      } else {
        answer(res, route);
      }
    });
    return null;
  }

  private etagOrNull(value: unknown): EntityTag | null {
    return value === undefined || value === null ? null : this.api.EntityTag.parse(String(value));
  }

  async call(op: string, args: Args, _loader: Loader | undefined): Promise<unknown> {
    const api = this.api;
    switch (op) {
      case "serve":
        return await this.serve(args);
      case "request":
        if (this.server === null) {
          throw new Error("request before serve: there is no server to ask");
        }
        return await this.server.request(args);
      case "etag":
        return api
          .makeEtag(Buffer.from(String(required(args, "body")), "utf8"), {
            weak: args.weak === true,
          })
          .toString();
      case "match":
        return api.ifNoneMatchMatches(
          String(required(args, "if_none_match")),
          this.etagOrNull(args.etag),
          args.exists === undefined ? {} : { exists: args.exists as boolean },
        );
      case "preconditions": {
        const lastModified = args.last_modified;
        return api.evaluatePreconditions(String(required(args, "method")), {
          ifNoneMatch: args.if_none_match ?? null,
          ifModifiedSince: args.if_modified_since ?? null,
          etag: this.etagOrNull(args.etag),
          lastModified:
            lastModified === undefined || lastModified === null
              ? null
              : api.parseHttpDate(String(lastModified)),
          ...(args.exists === undefined ? {} : { exists: args.exists }),
        });
      }
      case "cache_control":
        return new api.CacheControl(
          Object.fromEntries(Object.entries(args).map(([k, v]) => [camel(k), v])),
        ).toString();
      case "merge_vary":
        return api.mergeVary(...(required(args, "values") as Array<string | null>));
      case "surrogate_key":
        return api.surrogateKeyHeader(required(args, "keys") as string[]);
    }
    throw new Error(`http-cache-headers has no op ${JSON.stringify(op)}`);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    await server?.close();
  }
}

export function createAdapter(context: AdapterContext): Adapter {
  return new HttpCacheHeadersAdapter(context);
}
