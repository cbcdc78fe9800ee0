// Adapter: the cache-aside scenario ops onto the rendered cache class and its manager.
//
// Ops: get {key, ttl?} with a loader, set {key, value, ttl?}, delete {key},
// delete_pattern {pattern}, and for the wrapped function call {fn, args?, kwargs?} with
// a loader (the function is fn(x, y = 0) and calls the loader), invalidate {fn, args?,
// kwargs?}, invalidate_all {fn}.

import {
  exportedClass,
  optionalNumber,
  required,
  type Adapter,
  type AdapterContext,
  type Args,
} from "../adapter.js";
import type { Loader } from "../loaders.js";

// The rendered API as this adapter uses it (checked at run time by the calls themselves).
interface Cache {
  get(key: unknown, loader: unknown, ttl?: number): Promise<unknown>;
  set(key: unknown, value: unknown, ttl?: number): Promise<void>;
  delete(key: unknown): Promise<boolean>;
  deletePattern(pattern: unknown): Promise<number>;
}

interface CachedFunction {
  (...args: unknown[]): Promise<unknown>;
  invalidate(...args: unknown[]): Promise<boolean>;
  invalidateAll(): Promise<number>;
}

interface Manager {
  wrap(
    fn: (...args: unknown[]) => unknown,
    options: { name: string },
  ): CachedFunction;
}

// The wrapped function's parameters, in order, with their defaults: a call's kwargs
// are placed by name, as Python binds them, since JavaScript has only positions.
const PARAMETERS: ReadonlyArray<readonly [string, unknown]> = [
  ["x", null],
  ["y", 0],
];

function positional(args: Args): unknown[] {
  const given = Array.isArray(args.args) ? [...(args.args as unknown[])] : [];
  const kwargs = (args.kwargs ?? {}) as Record<string, unknown>;
  return PARAMETERS.map(([name, fallback], i) =>
    i < given.length ? given[i] : name in kwargs ? kwargs[name] : fallback,
  );
}

class CacheAsideAdapter implements Adapter {
  private readonly cache: Cache;
  private readonly manager: Manager;
  private readonly functions = new Map<string, CachedFunction>();
  private current: Loader | undefined;

  constructor({ module, client, options }: AdapterContext) {
    // The options are baked in as the rendered module's defaults: construct with none,
    // so the suite checks that they are the values asked for.
    this.cache = new (exportedClass<Cache>(module, options.class_name))(client);
    this.manager = new (exportedClass<Manager>(
      module,
      options.manager_class_name,
    ))(client);
  }

  private wrapped(name: string): CachedFunction {
    let fn = this.functions.get(name);
    if (fn === undefined) {
      const body = async (...args: unknown[]): Promise<unknown> => {
        if (this.current === undefined) {
          throw new Error("a wrapped call needs a loader");
        }
        return await this.current(...args);
      };
      fn = this.manager.wrap(body, { name });
      this.functions.set(name, fn);
    }
    return fn;
  }

  async call(
    op: string,
    args: Args,
    loader: Loader | undefined,
  ): Promise<unknown> {
    switch (op) {
      case "get":
        return await this.cache.get(
          required(args, "key"),
          loader,
          optionalNumber(args, "ttl"),
        );
      case "set":
        return await this.cache.set(
          required(args, "key"),
          required(args, "value"),
          optionalNumber(args, "ttl"),
        );
      case "delete":
        return await this.cache.delete(required(args, "key"));
      case "delete_pattern":
        return await this.cache.deletePattern(required(args, "pattern"));
    }
    const fn = this.wrapped(String(args.fn ?? "f"));
    switch (op) {
      case "call":
        this.current = loader;
        return await fn(...positional(args));
      case "invalidate":
        return await fn.invalidate(...positional(args));
      case "invalidate_all":
        return await fn.invalidateAll();
    }
    throw new Error(`cache-aside has no op ${JSON.stringify(op)}`);
  }

  async close(): Promise<void> {}
}

export function createAdapter(context: AdapterContext): Adapter {
  return new CacheAsideAdapter(context);
}
