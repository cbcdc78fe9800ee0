// The TypeScript driver of the behaviour suite (docs/conformance.md): JSON lines on
// stdin, one JSON line per request on stdout, anything else on stderr.
//
//     node out/driver.js --module /path/to/rendered/cacheAside.js
//     node out/driver.js --language express --module /path/to/rendered/cacheAside.js
//
// The rendered module is imported at run time, so one compiled driver serves every
// option set; names such as class_name come from the options sent with "configure".
// Each pattern's ops live in its adapter (adapters/<pattern>.ts; for Express output,
// adapters/express/<pattern>.ts). Express output is CommonJS: its exports are the
// module.exports that import() gives as the default.

import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { createClient } from "redis";

import type { Adapter, Args, CreateAdapter, DriverClient } from "./adapter.js";
import { Loaders, type LoaderSpec } from "./loaders.js";

const PROTOCOL_VERSION = 1;
const LANGUAGES = ["typescript", "express"];

// Error kinds are matched on class names along the prototype chain, so the rendered
// module's own classes map without the driver importing them.
const ERROR_KINDS: ReadonlyArray<readonly [string, string]> = [
  ["LoaderFailure", "loader"],
  ["UnencodableArgumentsError", "configuration"],
  ["ConfigurationError", "configuration"],
  ["LockTimeoutError", "lock_timeout"],
  ["FlushTimeoutError", "flush_timeout"],
  ["CacheUnavailableError", "unavailable"],
  ["TamperedDataError", "serialization"],
  ["SerializationError", "serialization"],
  ["StoreError", "store"],
];

export function errorKind(error: unknown): string {
  const names = new Set<string>();
  for (
    let proto: unknown =
      typeof error === "object" && error !== null
        ? Object.getPrototypeOf(error)
        : null;
    proto !== null && typeof proto === "object";
    proto = Object.getPrototypeOf(proto)
  ) {
    const ctor: unknown = (proto as { constructor?: unknown }).constructor;
    if (typeof ctor === "function") {
      names.add(ctor.name);
    }
  }
  return ERROR_KINDS.find(([name]) => names.has(name))?.[1] ?? "internal";
}

interface Message {
  id?: number;
  op: string;
  args?: Args;
  loader?: LoaderSpec | null;
  async?: string;
  callers?: number;
  step?: Message;
  pattern?: string;
  options?: Record<string, unknown>;
  redis_url?: string;
}

class Driver {
  readonly loaders = new Loaders();
  private adapter: Adapter | null = null;
  private pattern = "";
  private options: Record<string, unknown> = {};
  private client: DriverClient | null = null;
  private redisUrl = "";
  private readonly pending = new Map<string, Promise<unknown>>();

  constructor(
    private readonly module: Record<string, unknown>,
    private readonly language: string,
  ) {}

  async handle(message: Message): Promise<unknown> {
    switch (message.op) {
      case "hello":
        return { language: this.language, protocol: PROTOCOL_VERSION };
      case "configure":
        return await this.configure(message);
      case "reset":
        return await this.reset();
      case "release":
        this.loaders.release(String(this.args(message).gate));
        return null;
      case "await": {
        const handle = String(this.args(message).handle);
        const pending = this.pending.get(handle);
        if (pending === undefined) {
          throw new Error(
            `no operation was started with async ${JSON.stringify(handle)}`,
          );
        }
        this.pending.delete(handle);
        return await pending;
      }
      case "concurrent":
        return await this.concurrent(message);
      case "bye":
        return null;
      default:
        if (message.async !== undefined) {
          await this.startAsync(message, String(message.async));
          return null;
        }
        return await this.run(message);
    }
  }

  async close(): Promise<void> {
    await this.adapter?.close();
    this.adapter = null;
    this.client?.destroy();
    this.client = null;
  }

  private args(message: Message): Args {
    return message.args ?? {};
  }

  private async configure(message: Message): Promise<null> {
    this.pattern = String(message.pattern);
    this.options = message.options ?? {};
    this.redisUrl = String(message.redis_url);
    this.client = await this.connect();
    return null;
  }

  private async connect(): Promise<DriverClient> {
    // disableOfflineQueue: while Redis is down, commands fail at once (and the rendered
    // code fails open or reports "unavailable") instead of queueing until it is back.
    const client = createClient({
      url: this.redisUrl,
      disableOfflineQueue: true,
    });
    client.on("error", (error: unknown) => {
      process.stderr.write(`redis client: ${String(error)}\n`);
    });
    return await client.connect();
  }

  private async reset(): Promise<null> {
    await this.adapter?.close();
    this.adapter = null;
    this.loaders.reset();
    this.pending.clear();
    if (this.client === null) {
      throw new Error("reset before configure");
    }
    let createAdapter: CreateAdapter;
    try {
      const folder = this.language === "typescript" ? "" : `${this.language}/`;
      ({ createAdapter } = (await import(`./adapters/${folder}${this.pattern}.js`)) as {
        createAdapter: CreateAdapter;
      });
    } catch (error) {
      throw new Error(
        `no ${this.language} adapter for pattern ${JSON.stringify(this.pattern)}: ${String(error)}`,
      );
    }
    this.adapter = await createAdapter({
      module: this.module,
      client: this.client,
      connect: () => this.connect(),
      options: this.options,
      loaders: this.loaders,
    });
    return null;
  }

  private async run(message: Message): Promise<unknown> {
    if (this.adapter === null) {
      throw new Error(`${message.op} before reset`);
    }
    const loader =
      "loader" in message ? this.loaders.make(message.loader) : undefined;
    return await this.adapter.call(message.op, this.args(message), loader);
  }

  /** Every caller starts in the same turn of the event loop: they are released together. */
  private async concurrent(message: Message): Promise<unknown[]> {
    const inner = message.step;
    if (inner === undefined) {
      throw new Error("concurrent needs a step");
    }
    const callers = Number(message.callers);
    const outcomes = await Promise.allSettled(
      Array.from({ length: callers }, () => this.run(inner)),
    );
    const failed = outcomes.find(
      (o): o is PromiseRejectedResult => o.status === "rejected",
    );
    if (failed !== undefined) {
      throw failed.reason;
    }
    return outcomes.map((o) => (o as PromiseFulfilledResult<unknown>).value);
  }

  /**
   * Start the op in the background and answer once it has finished or its loader is
   * parked at a gate, so the runner's next step is known to happen *during* the load.
   */
  private async startAsync(message: Message, handle: string): Promise<void> {
    const entered = this.loaders.nextEntry();
    const operation = this.run(message);
    // Its outcome is reported by "await"; until then a rejection is not "unhandled".
    operation.catch(() => undefined);
    await Promise.race([
      operation.then(
        () => undefined,
        () => undefined,
      ),
      entered,
    ]);
    this.pending.set(handle, operation);
  }
}

function reply(
  id: unknown,
  outcome: { ok: true; value: unknown } | { ok: false; error: unknown },
  loaderCalls: number,
): string {
  const base = { id, ok: outcome.ok };
  const body = outcome.ok
    ? { ...base, value: outcome.value === undefined ? null : outcome.value }
    : {
        ...base,
        error: {
          kind: errorKind(outcome.error),
          message:
            outcome.error instanceof Error
              ? `${outcome.error.name}: ${outcome.error.message}`
              : String(outcome.error),
        },
      };
  return JSON.stringify({ ...body, loader_calls: loaderCalls }) + "\n";
}

function write(line: string): Promise<void> {
  return new Promise((resolve, reject) =>
    process.stdout.write(line, (error) => (error ? reject(error) : resolve())),
  );
}

async function main(argv: string[]): Promise<void> {
  const path = argv[argv.indexOf("--module") + 1];
  if (!argv.includes("--module") || path === undefined) {
    process.stderr.write(
      "usage: node driver.js [--language typescript|express] --module PATH_OF_RENDERED_JS\n",
    );
    process.exit(2);
  }
  const language = argv.includes("--language")
    ? String(argv[argv.indexOf("--language") + 1])
    : "typescript";
  if (!LANGUAGES.includes(language)) {
    process.stderr.write(`unknown --language ${JSON.stringify(language)}\n`);
    process.exit(2);
  }
  const imported = (await import(pathToFileURL(path).href)) as Record<
    string,
    unknown
  >;
  const module =
    language === "express"
      ? (imported.default as Record<string, unknown>)
      : imported;
  const driver = new Driver(module, language);
  // A background op that fails after its "await" was answered must not end the driver.
  process.on("unhandledRejection", (error) => {
    process.stderr.write(`unhandled rejection: ${String(error)}\n`);
  });
  for await (const line of createInterface({
    input: process.stdin,
    crlfDelay: Infinity,
  })) {
    if (line.trim() === "") {
      continue;
    }
    let message: Message;
    try {
      message = JSON.parse(line) as Message;
    } catch (error) {
      await write(reply(null, { ok: false, error }, driver.loaders.calls));
      continue;
    }
    let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: await driver.handle(message) };
    } catch (error) {
      outcome = { ok: false, error };
    }
    await write(reply(message.id, outcome, driver.loaders.calls));
    if (message.op === "bye") {
      break;
    }
  }
  await driver.close();
  // Loaders still parked at a gate (30 s timers) must not keep the process alive.
  process.exit(0);
}

await main(process.argv.slice(2));
