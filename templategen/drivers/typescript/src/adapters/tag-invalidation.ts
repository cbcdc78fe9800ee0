// Adapter: the tag-invalidation scenario ops onto the rendered cache class. The ops are
// specified once, for every language, under "ops" in
// templates/tag-invalidation/scenarios.json:
//
//   set_with_tags {key, value, ttl, tags} -> null
//   get {key, default?} -> the value, or default (null) on a miss (the rendered get
//       answers undefined on a miss)
//   get_tags {key} -> the tags as a list sorted by code point
//   invalidate_tags {tags} -> invalidateTags(...tags)
//   delete {key} -> whether there was an entry

import {
  exportedClass,
  required,
  type Adapter,
  type AdapterContext,
  type Args,
} from "../adapter.js";

interface Cache {
  setWithTags(
    key: unknown,
    value: unknown,
    ttl: unknown,
    tags: unknown,
  ): Promise<void>;
  get(key: unknown): Promise<unknown>;
  getTags(key: unknown): Promise<Set<string>>;
  invalidateTags(...tags: unknown[]): Promise<number>;
  delete(key: unknown): Promise<boolean>;
}

/** Code point order, as the other languages sort: UTF-8 bytes compare the same way. */
function byCodePoint(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

class TagInvalidationAdapter implements Adapter {
  private readonly cache: Cache;

  constructor({ module, client, options }: AdapterContext) {
    // The options are baked in as the rendered module's defaults: construct with none,
    // so the suite checks that they are the values asked for.
    this.cache = new (exportedClass<Cache>(module, options.class_name))(client);
  }

  async call(op: string, args: Args): Promise<unknown> {
    switch (op) {
      case "set_with_tags":
        return await this.cache.setWithTags(
          required(args, "key"),
          required(args, "value"),
          required(args, "ttl"),
          required(args, "tags"),
        );
      case "get": {
        const value = await this.cache.get(required(args, "key"));
        return value === undefined ? (args.default ?? null) : value;
      }
      case "get_tags":
        return [...(await this.cache.getTags(required(args, "key")))].sort(
          byCodePoint,
        );
      case "invalidate_tags": {
        const tags = required(args, "tags");
        return await this.cache.invalidateTags(
          ...(Array.isArray(tags) ? tags : [tags]),
        );
      }
      case "delete":
        return await this.cache.delete(required(args, "key"));
    }
    throw new Error(`tag-invalidation has no op ${JSON.stringify(op)}`);
  }

  async close(): Promise<void> {}
}

export function createAdapter(context: AdapterContext): Adapter {
  return new TagInvalidationAdapter(context);
}
