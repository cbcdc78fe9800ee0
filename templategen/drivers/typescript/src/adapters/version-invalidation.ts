// Adapter: the version-invalidation scenario ops onto the rendered cache class. The ops
// are specified once, for every language, under "ops" in
// templates/version-invalidation/scenarios.json:
//
//   get_version {entity}, increment_version {entity} -> the version
//   get {entity, id, default?} -> the value, or default (null) on a miss (the rendered
//       get answers undefined on a miss)
//   lookup {entity, id} -> {found, value (null on a miss), version}
//   set {entity, id, value, ttl?, version?} -> whether it was written
//   get_or_load {entity, id, ttl?} with a loader
//
// Versions are bigints in the rendered API and JSON numbers in the scenarios: the
// adapter converts both ways (scenario versions are far below 2^53).

import {
  exportedClass,
  optionalNumber,
  required,
  type Adapter,
  type AdapterContext,
  type Args,
} from "../adapter.js";
import type { Loader } from "../loaders.js";

interface Lookup {
  found: boolean;
  value?: unknown;
  version: bigint;
}

interface Cache {
  getVersion(entity: unknown): Promise<bigint>;
  incrementVersion(entity: unknown): Promise<bigint>;
  lookup(entity: unknown, id: unknown): Promise<Lookup>;
  get(entity: unknown, id: unknown): Promise<unknown>;
  set(
    entity: unknown,
    id: unknown,
    value: unknown,
    options: { ttl?: number; version?: unknown },
  ): Promise<boolean>;
  getOrLoad(
    entity: unknown,
    id: unknown,
    loader: unknown,
    ttl?: number,
  ): Promise<unknown>;
}

/** A version as the scenarios write it: a JSON number. */
function versionToJson(version: bigint): number {
  const number = Number(version);
  if (!Number.isSafeInteger(number)) {
    throw new Error(`version ${version} has no exact JSON number`);
  }
  return number;
}

/** A scenario's integer version as a bigint; anything else as given (to be refused). */
function versionFromJson(version: unknown): unknown {
  return typeof version === "number" && Number.isInteger(version)
    ? BigInt(version)
    : version;
}

class VersionInvalidationAdapter implements Adapter {
  private readonly cache: Cache;

  constructor({ module, client, options }: AdapterContext) {
    // The options are baked in as the rendered module's defaults (the TTL too):
    // construct with none and leave ttl out of calls the scenario gives none, so the
    // suite checks the baked-in values.
    this.cache = new (exportedClass<Cache>(module, options.class_name))(client);
  }

  async call(
    op: string,
    args: Args,
    loader: Loader | undefined,
  ): Promise<unknown> {
    switch (op) {
      case "get_version":
        return versionToJson(
          await this.cache.getVersion(required(args, "entity")),
        );
      case "increment_version":
        return versionToJson(
          await this.cache.incrementVersion(required(args, "entity")),
        );
      case "get": {
        const value = await this.cache.get(
          required(args, "entity"),
          required(args, "id"),
        );
        return value === undefined ? (args.default ?? null) : value;
      }
      case "lookup": {
        const found = await this.cache.lookup(
          required(args, "entity"),
          required(args, "id"),
        );
        return {
          found: found.found,
          value: found.found ? found.value : null,
          version: versionToJson(found.version),
        };
      }
      case "set": {
        const ttl = optionalNumber(args, "ttl");
        return await this.cache.set(
          required(args, "entity"),
          required(args, "id"),
          required(args, "value"),
          {
            ...(ttl === undefined ? {} : { ttl }),
            ...("version" in args
              ? { version: versionFromJson(args.version) }
              : {}),
          },
        );
      }
      case "get_or_load":
        return await this.cache.getOrLoad(
          required(args, "entity"),
          required(args, "id"),
          loader,
          optionalNumber(args, "ttl"),
        );
    }
    throw new Error(
      `version-invalidation has no op ${JSON.stringify(op)}`,
    );
  }

  async close(): Promise<void> {}
}

export function createAdapter(context: AdapterContext): Adapter {
  return new VersionInvalidationAdapter(context);
}
