// The node side of bench section 8 (bench/typescript_hits.py): the hit path of each
// rendered TypeScript pattern, timed against its own floor on the same node-redis
// client, in one process that lives for the whole section.
//
//     node --expose-gc out/hits.js
//
// One request per stdin line, one reply per stdout line, in order; a failure's stack
// goes to stderr. A reply is {"ok": ...} or {"error": "..."}.
//
//   {"op": "connect", "url", "value", "floor_key"}
//       connect; the floor reads floor_key, which holds `value` as compact JSON
//       -> {"ok": {"node": "v20..."}}
//   {"op": "setup", "pattern", "key", "warmup"}
//       the pattern's hit path on `key`: filled, checked to answer `value`, then
//       `warmup` calls of it and of the floor, so that V8 has optimised both before
//       anything is timed -> {"ok": null}
//   {"op": "hits", "n"}
//       n hits and nothing else, while Python counts what the server receives
//       -> {"ok": {"loads": 0}}
//   {"op": "paired", "rounds", "chunk"}
//       `rounds` pairs of chunks of `chunk` calls, the floor first in even rounds and
//       the hit first in odd ones -> {"ok": {"floor": [s, ...], "hit": [s, ...],
//       "loads": 0}}, seconds per chunk in order; Python takes the ratios
//   {"op": "bye"}
//       disconnect and exit -> {"ok": null}
//
// "loads" counts loader calls and store reads during the request: a hit makes none.
// One process rather than one per request: a MONITOR window around "hits" must see
// those hits and nothing else, not even a new connection's handshake. Only chunk
// times cross the pipe, so the pipe's own cost is in no figure.

import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";

import {
  Loads,
  newClient,
  type Client,
  type CreateHitPath,
} from "./hit-path.js";

interface Request {
  op: string;
  url?: unknown;
  value?: unknown;
  floor_key?: unknown;
  pattern?: unknown;
  key?: unknown;
  warmup?: unknown;
  n?: unknown;
  rounds?: unknown;
  chunk?: unknown;
}

type Call = () => Promise<unknown>;

/** Seconds for `n` calls of `fn`, each awaited before the next: one caller. */
async function timeCalls(fn: Call, n: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    await fn();
  }
  return (performance.now() - started) / 1000;
}

function count(value: unknown, name: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw new Error(
      `${name} must be an integer >= 1, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function text(value: unknown, name: string): string {
  if (typeof value !== "string" || value === "") {
    throw new Error(
      `${name} must be a non-empty string, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

class Bench {
  private client: Client | null = null;
  private floor: Call | null = null;
  private hit: Call | null = null;
  private readonly loads = new Loads();
  private value: unknown = null;
  /** `value` as compact JSON: what the floor key holds and what every hit must answer. */
  private expected = "";

  async handle(request: Request): Promise<unknown> {
    switch (request.op) {
      case "connect":
        return await this.connect(request);
      case "setup":
        await this.setup(request);
        return null;
      case "hits": {
        const { hit } = this.current();
        const n = count(request.n, "n");
        return await this.counted(async () => {
          await timeCalls(hit, n);
          return {};
        });
      }
      case "paired":
        return await this.counted(() =>
          this.paired(
            count(request.rounds, "rounds"),
            count(request.chunk, "chunk"),
          ),
        );
      case "bye":
        this.client?.destroy();
        this.client = null;
        return null;
    }
    throw new Error(`unknown op ${JSON.stringify(request.op)}`);
  }

  private async connect(request: Request): Promise<{ node: string }> {
    const floorKey = text(request.floor_key, "floor_key");
    const client = newClient(text(request.url, "url"));
    client.on("error", (error: unknown) => {
      process.stderr.write(`redis client: ${String(error)}\n`);
    });
    await client.connect();
    this.client = client;
    this.value = request.value;
    this.expected = JSON.stringify(request.value);
    // The floor: the least any cache can do on a hit of a JSON value, one GET and one
    // JSON.parse, on the same client as the pattern under test.
    this.floor = async () => {
      const stored = await client.get(floorKey);
      if (stored === null) {
        throw new Error(`the floor key ${floorKey} is empty`);
      }
      return JSON.parse(stored);
    };
    if (JSON.stringify(await this.floor()) !== this.expected) {
      throw new Error(`the floor key ${floorKey} does not hold the value`);
    }
    return { node: process.version };
  }

  private async setup(request: Request): Promise<void> {
    const pattern = text(request.pattern, "pattern");
    const key = text(request.key, "key");
    const warmup = count(request.warmup, "warmup");
    if (this.client === null || this.floor === null) {
      throw new Error("setup before connect");
    }
    this.hit = null;
    // The adapter is looked up by the pattern's name at run time, so a pattern whose
    // rendering failed (and was left out of the build) costs only its own row.
    const { createHitPath } = (await import(`./adapters/${pattern}.js`)) as {
      createHitPath: CreateHitPath;
    };
    const path = createHitPath(this.client, this.value, this.loads);
    await path.fill(key);
    const hit: Call = () => path.hit(key);
    // Timing a hit that answers anything else would time the wrong thing.
    const answered = JSON.stringify(await hit()) ?? "undefined";
    if (answered !== this.expected) {
      throw new Error(
        `a hit on ${key} answered ${answered.slice(0, 60)}, not the value it was filled with`,
      );
    }
    await timeCalls(hit, warmup);
    await timeCalls(this.floor, warmup);
    this.hit = hit;
  }

  private async paired(
    rounds: number,
    chunk: number,
  ): Promise<{ floor: number[]; hit: number[] }> {
    const { floor, hit } = this.current();
    // A collection now rather than inside a chunk (section 2's gc.collect()).
    globalThis.gc?.();
    const floorTimes: number[] = [];
    const hitTimes: number[] = [];
    for (let i = 0; i < rounds; i++) {
      if (i % 2 === 0) {
        floorTimes.push(await timeCalls(floor, chunk));
        hitTimes.push(await timeCalls(hit, chunk));
      } else {
        hitTimes.push(await timeCalls(hit, chunk));
        floorTimes.push(await timeCalls(floor, chunk));
      }
    }
    return { floor: floorTimes, hit: hitTimes };
  }

  /** `run`'s reply with the loads made while it ran. */
  private async counted<R extends object>(
    run: () => Promise<R>,
  ): Promise<R & { loads: number }> {
    const before = this.loads.count;
    const reply = await run();
    return { ...reply, loads: this.loads.count - before };
  }

  private current(): { floor: Call; hit: Call } {
    if (this.floor === null || this.hit === null) {
      throw new Error("no pattern set up");
    }
    return { floor: this.floor, hit: this.hit };
  }
}

async function main(): Promise<void> {
  const bench = new Bench();
  // Requests are handled one at a time, in order: the Python side waits for each reply,
  // and a MONITOR window around "hits" must hold those hits and nothing else.
  for await (const line of createInterface({
    input: process.stdin,
    crlfDelay: Infinity,
  })) {
    if (line.trim() === "") {
      continue;
    }
    let request: Request | null = null;
    let reply: unknown;
    try {
      request = JSON.parse(line) as Request;
      reply = { ok: await bench.handle(request) };
    } catch (error) {
      // The message answers the request (it ends up in a table row); the stack is for
      // whoever reads the section's stderr file.
      process.stderr.write(
        `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      reply = { error: error instanceof Error ? error.message : String(error) };
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`);
    if (request?.op === "bye") {
      break;
    }
  }
}

await main();
