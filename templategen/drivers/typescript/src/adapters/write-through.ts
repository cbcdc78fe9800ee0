// Adapter: the write-through scenario ops onto the rendered cache class, over the
// rendered file's own MemoryStore. The ops are specified once, for every language,
// under "ops" in templates/write-through/scenarios.json:
//
//   set {id, data}, get {id}, delete {id} on the cache; rows answer {data, version}
//   store_get {id}: the store's own row, not through the gate, not counted
//   new_cache {key_prefix?, ttl?, negative_ttl?, lease_ttl?}: one more cache with
//       these options, to see bad ones refused
//   store_block / store_error in the args of set, get and delete: that step's one
//       store call parks at the gate once it has run (a read done, a write
//       committed), or throws instead of running
//
// Store reads count as the driver's loader calls: the store is what this pattern loads
// from. Versions are bigints in the rendered API and JSON numbers in the scenarios.

import { AsyncLocalStorage } from "node:async_hooks";

import {
  exportedClass,
  required,
  type Adapter,
  type AdapterContext,
  type Args,
  type DriverClient,
} from "../adapter.js";
import type { Loaders } from "../loaders.js";

interface Row {
  readonly id: string;
  readonly data: unknown;
  readonly version: bigint;
}

interface Store {
  get(id: string): Promise<Row | null>;
  upsert(id: string, data: unknown): Promise<Row>;
  delete(id: string): Promise<bigint | null>;
}

interface Cache {
  get(id: unknown): Promise<Row | null>;
  set(id: unknown, data: unknown): Promise<Row>;
  delete(id: unknown): Promise<boolean>;
}

type CacheClass = new (
  client: DriverClient,
  store: Store,
  options?: Record<string, unknown>,
) => Cache;

/** The failure a step asked the store for with store_error. */
class InjectedStoreError extends Error {
  override name = "InjectedStoreError";
}

/** What one step asked of its store call. */
interface Arming {
  readonly block: string | undefined;
  readonly error: string | undefined;
}

/**
 * A test double of the user's database: the rendered MemoryStore, whose calls a step
 * can park at a gate after they ran, or make fail. The arming travels with the step's
 * own async context, so only that step's store call parks, never another caller's.
 */
class GatedStore implements Store {
  private readonly step = new AsyncLocalStorage<Arming>();

  constructor(
    readonly inner: Store,
    private readonly loaders: Loaders,
  ) {}

  armed<R>(arming: Arming, run: () => Promise<R>): Promise<R> {
    return this.step.run(arming, run);
  }

  async get(id: string): Promise<Row | null> {
    this.before();
    const row = await this.inner.get(id);
    this.loaders.calls += 1; // a store read is this pattern's load
    await this.after();
    return row;
  }

  async upsert(id: string, data: unknown): Promise<Row> {
    this.before();
    const row = await this.inner.upsert(id, data); // committed here
    await this.after();
    return row;
  }

  async delete(id: string): Promise<bigint | null> {
    this.before();
    const version = await this.inner.delete(id); // committed here
    await this.after();
    return version;
  }

  private before(): void {
    const error = this.step.getStore()?.error;
    if (error !== undefined) {
      throw new InjectedStoreError(error);
    }
  }

  private async after(): Promise<void> {
    const block = this.step.getStore()?.block;
    if (block !== undefined) {
      await this.loaders.park(block);
    }
  }
}

/** A row as the scenarios write it: {data, version} with a JSON number version. */
function rowToJson(row: Row | null): unknown {
  if (row === null) {
    return null;
  }
  const version = Number(row.version);
  if (!Number.isSafeInteger(version)) {
    throw new Error(`version ${row.version} has no exact JSON number`);
  }
  return { data: row.data, version };
}

/** Scenario option names as the rendered constructor spells them. */
const OPTION_NAMES: Readonly<Record<string, string>> = {
  key_prefix: "prefix",
  ttl: "ttl",
  negative_ttl: "negativeTtl",
  lease_ttl: "leaseTtl",
};

function optionalString(value: unknown): string | undefined {
  return value === undefined || value === null ? undefined : String(value);
}

class WriteThroughAdapter implements Adapter {
  private readonly cacheClass: CacheClass;
  private readonly store: GatedStore;
  private readonly cache: Cache;

  constructor(private readonly context: AdapterContext) {
    const { module, options, loaders } = context;
    this.cacheClass = exportedClass<Cache>(module, options.class_name);
    const memoryStore = exportedClass<Store>(module, "MemoryStore");
    this.store = new GatedStore(new memoryStore(), loaders);
    // The options are baked in as the rendered module's defaults: construct with none,
    // so the suite checks that they are the values asked for.
    this.cache = this.newCache({});
  }

  private newCache(overrides: Args): Cache {
    const options: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(overrides)) {
      const option = OPTION_NAMES[name];
      if (option === undefined) {
        throw new Error(`new_cache takes no option ${JSON.stringify(name)}`);
      }
      // As the option: a negative_ttl of 0 turns negative caching off.
      options[option] = name === "negative_ttl" && value === 0 ? null : value;
    }
    return new this.cacheClass(this.context.client, this.store, options);
  }

  async call(op: string, args: Args): Promise<unknown> {
    switch (op) {
      case "store_get":
        return rowToJson(await this.store.inner.get(String(required(args, "id"))));
      case "new_cache":
        this.newCache(args);
        return null;
    }
    const { store_block: block, store_error: error, ...rest } = args;
    const arming = { block: optionalString(block), error: optionalString(error) };
    return await this.store.armed(arming, async () => {
      switch (op) {
        case "set":
          return rowToJson(
            await this.cache.set(required(rest, "id"), required(rest, "data")),
          );
        case "get":
          return rowToJson(await this.cache.get(required(rest, "id")));
        case "delete":
          return await this.cache.delete(required(rest, "id"));
      }
      throw new Error(`write-through has no op ${JSON.stringify(op)}`);
    });
  }

  async close(): Promise<void> {}
}

export function createAdapter(context: AdapterContext): Adapter {
  return new WriteThroughAdapter(context);
}
