// Adapter: the write-behind scenario ops onto the rendered cache class, over the
// rendered file's own MemoryStore behind a scripted double. The ops are specified once,
// for every language, under "ops" in templates/write-behind/scenarios.json:
//
//   set {id, data} -> the version; get {id} -> the data or null
//   flush {timeout?}, start, stop {timeout?}, stats {fields?}
//   store_get {id}, store_put {id, data, version}: the store itself, never failing
//   store_fail {calls}, store_poison {id}, store_block {gate}, store_calls: the double
//
// Versions are bigints in the rendered API and JSON numbers in the scenarios.

import {
  exportedClass,
  required,
  type Adapter,
  type AdapterContext,
  type Args,
} from "../adapter.js";
import type { Loaders } from "../loaders.js";

interface Row {
  readonly id: string;
  readonly data: unknown;
  readonly version: bigint;
}

interface Store {
  get(id: string): Promise<Row | null>;
  upsertMany(rows: ReadonlyArray<Row>): Promise<number>;
}

interface Stats {
  readonly queued: number;
  readonly flushed: number;
  readonly retried: number;
  readonly deadLettered: number;
  readonly queueDepth: number;
  readonly oldestPendingAge: number;
  readonly deadLetters: number;
}

interface Cache {
  set(id: unknown, data: unknown): Promise<Row>;
  get(id: unknown): Promise<Row | null>;
  start(): Promise<void>;
  flush(timeout?: number): Promise<void>;
  stop(timeout?: number): Promise<void>;
  stats(): Promise<Stats>;
}

/** The scenarios' stats names (oldest_pending_age, a timing, is left out). */
const STATS_FIELDS: ReadonlyArray<readonly [string, keyof Stats]> = [
  ["queued", "queued"],
  ["flushed", "flushed"],
  ["retried", "retried"],
  ["dead_lettered", "deadLettered"],
  ["queue_depth", "queueDepth"],
  ["dead_letters", "deadLetters"],
];

/**
 * The user's database (`inner`, the rendered MemoryStore) with the failures and gates a
 * scenario asks for: a test double of the database, never of Redis.
 */
class ScriptedStore implements Store {
  failures = 0;
  readonly poison = new Set<string>();
  gate: string | null = null;
  readonly calls: number[] = [];

  constructor(
    readonly inner: Store,
    private readonly loaders: Loaders,
  ) {}

  async get(id: string): Promise<Row | null> {
    return await this.inner.get(id);
  }

  async upsertMany(rows: ReadonlyArray<Row>): Promise<number> {
    const batch = [...rows];
    this.calls.push(batch.length);
    const gate = this.gate;
    this.gate = null;
    if (gate !== null) {
      await this.loaders.park(gate); // lets an async op answer: the write is parked
    }
    if (this.failures > 0) {
      this.failures -= 1;
      throw new Error("database is down");
    }
    const poisoned = batch.find((row) => this.poison.has(row.id));
    if (poisoned !== undefined) {
      throw new Error(
        `row ${JSON.stringify(poisoned.id)} violates constraint data_check`,
      );
    }
    return await this.inner.upsertMany(batch);
  }
}

function versionToJson(version: bigint): number {
  const number = Number(version);
  if (!Number.isSafeInteger(number)) {
    throw new Error(`version ${version} has no exact JSON number`);
  }
  return number;
}

function optionalTimeout(args: Args): number | undefined {
  return "timeout" in args ? (args.timeout as number) : undefined;
}

class WriteBehindAdapter implements Adapter {
  private readonly store: ScriptedStore;
  private readonly cache: Cache;
  private started = false;

  constructor({ module, client, options, loaders }: AdapterContext) {
    const memoryStore = exportedClass<Store>(module, "MemoryStore");
    this.store = new ScriptedStore(new memoryStore(), loaders);
    // The options are baked in as the rendered module's defaults: construct with none,
    // so the suite checks that they are the values asked for.
    this.cache = new (exportedClass<Cache>(module, options.class_name))(
      client,
      this.store,
    );
  }

  async call(op: string, args: Args): Promise<unknown> {
    const { cache, store } = this;
    switch (op) {
      case "set":
        return versionToJson(
          (await cache.set(required(args, "id"), required(args, "data"))).version,
        );
      case "get": {
        const row = await cache.get(required(args, "id"));
        return row === null ? null : row.data;
      }
      case "flush":
        return await cache.flush(optionalTimeout(args));
      case "start":
        this.started = true;
        return await cache.start();
      case "stop":
        return await cache.stop(optionalTimeout(args));
      case "stats": {
        const stats = await cache.stats();
        const wanted = Array.isArray(args.fields)
          ? new Set(args.fields.map(String))
          : null;
        return Object.fromEntries(
          STATS_FIELDS.filter(([name]) => wanted === null || wanted.has(name)).map(
            ([name, field]) => [name, stats[field]],
          ),
        );
      }
      case "store_get": {
        const row = await store.inner.get(String(required(args, "id")));
        return row === null ? null : row.data;
      }
      case "store_put":
        return await store.inner.upsertMany([
          {
            id: String(required(args, "id")),
            data: required(args, "data"),
            version: BigInt(Number(required(args, "version"))),
          },
        ]);
      case "store_fail":
        store.failures = Number(required(args, "calls"));
        return null;
      case "store_poison":
        store.poison.add(String(required(args, "id")));
        return null;
      case "store_block":
        store.gate = String(required(args, "gate"));
        return null;
      case "store_calls":
        return [...store.calls];
    }
    throw new Error(`write-behind has no op ${JSON.stringify(op)}`);
  }

  async close(): Promise<void> {
    if (this.started) {
      // End the background flusher; whatever it leaves pending is the next flush's
      // business, and Redis is flushed between scenarios anyway.
      try {
        await this.cache.stop(1);
      } catch {
        // nothing to do: the scenario is over
      }
    }
  }
}

export function createAdapter(context: AdapterContext): Adapter {
  return new WriteBehindAdapter(context);
}
