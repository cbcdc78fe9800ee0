// Adapter: the stampede-lock scenario ops onto the rendered cache class. The ops are
// specified once, for every language, under "ops" in
// templates/stampede-lock/scenarios.json:
//
//   get {key, ttl?, other_process?, wait_timeout?} with a loader: cacheWithLock.
//       With other_process or wait_timeout, through a cache object of its own on a
//       connection of its own (another process to Redis and to the single-flight).
//   lock {key, timeout?} with an optional loader: distributedLock, calling the loader
//       inside the block when the lock was acquired; the value is whether it was.

import {
  exportedClass,
  optionalNumber,
  required,
  type Adapter,
  type AdapterContext,
  type Args,
  type DriverClient,
} from "../adapter.js";
import type { Loader } from "../loaders.js";

interface Cache {
  cacheWithLock(key: unknown, loader: unknown, ttl?: number): Promise<unknown>;
  distributedLock(
    key: unknown,
    body: (acquired: boolean) => Promise<boolean>,
    timeout?: number,
  ): Promise<boolean>;
}

type CacheClass = new (
  client: DriverClient,
  options?: { waitTimeout?: number },
) => Cache;

class StampedeLockAdapter implements Adapter {
  private readonly cacheClass: CacheClass;
  private readonly cache: Cache;

  constructor(private readonly context: AdapterContext) {
    // The options are baked in as the rendered module's defaults: construct with none,
    // so the suite checks that they are the values asked for.
    this.cacheClass = exportedClass<Cache>(
      context.module,
      context.options.class_name,
    );
    this.cache = new this.cacheClass(context.client);
  }

  private async get(
    cache: Cache,
    args: Args,
    loader: Loader | undefined,
  ): Promise<unknown> {
    return await cache.cacheWithLock(
      required(args, "key"),
      loader,
      optionalNumber(args, "ttl"),
    );
  }

  private async getAsOtherProcess(
    args: Args,
    loader: Loader | undefined,
  ): Promise<unknown> {
    const client = await this.context.connect();
    try {
      const waitTimeout = optionalNumber(args, "wait_timeout");
      const cache = new this.cacheClass(
        client,
        waitTimeout === undefined ? {} : { waitTimeout },
      );
      return await this.get(cache, args, loader);
    } finally {
      client.destroy();
    }
  }

  async call(
    op: string,
    args: Args,
    loader: Loader | undefined,
  ): Promise<unknown> {
    if (op === "get") {
      if (args.other_process === true || args.wait_timeout !== undefined) {
        return await this.getAsOtherProcess(args, loader);
      }
      return await this.get(this.cache, args, loader);
    }
    if (op === "lock") {
      return await this.cache.distributedLock(
        required(args, "key"),
        async (acquired) => {
          if (acquired && loader !== undefined) {
            await loader();
          }
          return acquired;
        },
        optionalNumber(args, "timeout"),
      );
    }
    throw new Error(`stampede-lock has no op ${JSON.stringify(op)}`);
  }

  async close(): Promise<void> {}
}

export function createAdapter(context: AdapterContext): Adapter {
  return new StampedeLockAdapter(context);
}
