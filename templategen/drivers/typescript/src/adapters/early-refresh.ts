// Adapter: the early-refresh scenario ops onto the rendered cache class. The ops are
// specified once, for every language, under "ops" in
// templates/early-refresh/scenarios.json:
//
//   set_clock {ms}: the cache's clock reads ms (milliseconds since the epoch) and
//       stands still there; at reset it is the real time.
//   set_rand {value}: every draw of XFetch's r returns value; at reset it is 1.
//   get {key, ttl?, beta?, load_ms?} with a loader: getWithRefresh. Calling the loader
//       first moves the clock forward by load_ms: that is the entry's delta.

import {
  exportedClass,
  optionalNumber,
  required,
  type Adapter,
  type AdapterContext,
  type Args,
} from "../adapter.js";
import type { Loader } from "../loaders.js";

interface Cache {
  getWithRefresh(
    key: unknown,
    loader: () => Promise<unknown>,
    ttl?: number,
    beta?: number,
  ): Promise<unknown>;
}

class EarlyRefreshAdapter implements Adapter {
  private readonly cache: Cache;
  private clockMs = Date.now();
  private draw = 1;

  constructor({ module, client, options }: AdapterContext) {
    // The options are baked in as the rendered module's defaults: construct with none
    // but the clock and the random source, so the suite checks the baked-in values.
    this.cache = new (exportedClass<Cache>(module, options.class_name))(
      client,
      {
        clock: () => this.clockMs,
        random: () => this.draw,
      },
    );
  }

  async call(
    op: string,
    args: Args,
    loader: Loader | undefined,
  ): Promise<unknown> {
    switch (op) {
      case "set_clock":
        this.clockMs = Number(required(args, "ms"));
        return null;
      case "set_rand":
        this.draw = Number(required(args, "value"));
        return null;
      case "get": {
        const loadMs = Number(args.load_ms ?? 0);
        const timed = async (): Promise<unknown> => {
          this.clockMs += loadMs;
          if (loader === undefined) {
            throw new Error("get needs a loader");
          }
          return await loader();
        };
        return await this.cache.getWithRefresh(
          required(args, "key"),
          timed,
          optionalNumber(args, "ttl"),
          optionalNumber(args, "beta"),
        );
      }
    }
    throw new Error(`early-refresh has no op ${JSON.stringify(op)}`);
  }

  async close(): Promise<void> {}
}

export function createAdapter(context: AdapterContext): Adapter {
  return new EarlyRefreshAdapter(context);
}
