// What a pattern adapter is: the scenario ops of one pattern mapped onto the rendered
// module's public API. One file per pattern in adapters/, named after the pattern
// (adapters/cache-aside.ts), exporting `createAdapter`.

import type { Loader, Loaders } from "./loaders.js";

/** A connected node-redis client (from createClient()), as the driver holds it. */
export interface DriverClient {
  readonly isOpen: boolean;
  sendCommand(args: ReadonlyArray<string | Buffer>): Promise<unknown>;
  destroy(): void;
}

/** A scenario step's `args`: JSON. */
export type Args = Record<string, unknown>;

export interface AdapterContext {
  /** The rendered module's namespace: its exports by name. */
  readonly module: Record<string, unknown>;
  readonly client: DriverClient;
  /** A new connection of its own, to the same Redis: "another process" to the code. */
  connect(): Promise<DriverClient>;
  /** The option values the module was rendered with (all of them, defaults included). */
  readonly options: Record<string, unknown>;
  /**
   * The driver's loaders: their count is every response's loader_calls and "release"
   * opens their gates. A pattern without loaders (write-through's store) counts its
   * calls in `calls` and parks at a gate with `park`.
   */
  readonly loaders: Loaders;
}

export interface Adapter {
  call(op: string, args: Args, loader: Loader | undefined): Promise<unknown>;
  close(): Promise<void>;
}

export type CreateAdapter = (
  context: AdapterContext,
) => Adapter | Promise<Adapter>;

/** A class the rendered module exports under `name` (a name taken from the options). */
export function exportedClass<T>(
  module: Record<string, unknown>,
  name: unknown,
): new (...args: unknown[]) => T {
  const value = module[String(name)];
  if (typeof value !== "function") {
    throw new Error(
      `the rendered module exports no class ${JSON.stringify(name)}`,
    );
  }
  return value as new (...args: unknown[]) => T;
}

/** A step argument that must be present. */
export function required(args: Args, name: string): unknown {
  if (!(name in args)) {
    throw new Error(`the step needs args.${name}`);
  }
  return args[name];
}

/**
 * An optional number argument (a ttl): undefined when absent. Whatever else the step
 * gives is passed on as it is: refusing bad values is the rendered code's job.
 */
export function optionalNumber(args: Args, name: string): number | undefined {
  const value = args[name];
  return value === undefined || value === null ? undefined : (value as number);
}
