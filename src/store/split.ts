/**
 * One store made of two: keys under a prefix live in one store, every other key in another. Verneuil keeps
 * content-addressed chunks and manifests in separate buckets; this is how a target with a separate chunk
 * bucket looks like a single {@linkcode BlobStore}.
 *
 * @module
 */

import { checkPrefix, compareKeys } from "./keys.ts";
import type {
  BlobStore,
  GetOptions,
  GetResult,
  HeadResult,
  ListItem,
  ListOptions,
  PutOptions,
  StoreCallOptions,
  StoreCapabilities,
} from "./types.ts";

/** Options of {@linkcode SplitStore}. */
export interface SplitStoreOptions {
  /** Keys starting with this prefix are routed to `matching`. @default {"chunks/"} */
  prefix?: string | undefined;
  /** Holds the keys that start with `prefix`. */
  matching: BlobStore;
  /** Holds every other key. */
  rest: BlobStore;
}

/**
 * A {@linkcode BlobStore} that routes each key by its prefix to one of two stores and lists both as one
 * namespace, in key order. Objects a store holds on the wrong side of the split (a stray `chunks/` key in
 * the manifest bucket) are invisible, to listings as well as to reads.
 *
 * @example Chunks in one store, everything else in another
 * ```ts
 * import { MemoryStore } from "./memory.ts";
 * import { SplitStore } from "./split.ts";
 *
 * const chunks = new MemoryStore();
 * const store = new SplitStore({ matching: chunks, rest: new MemoryStore() });
 * await store.put("chunks/ab/abcd", new Uint8Array([1]));
 * console.log((await chunks.head("chunks/ab/abcd")).status); // ok
 * ```
 */
export class SplitStore implements BlobStore {
  /** Keys starting with this are routed to {@linkcode SplitStore.matching}. */
  readonly prefix: string;
  readonly matching: BlobStore;
  readonly rest: BlobStore;
  readonly description: string;
  readonly capabilities: Readonly<StoreCapabilities>;

  constructor(options: SplitStoreOptions) {
    const prefix = options.prefix ?? "chunks/";
    if (typeof prefix !== "string" || prefix === "") {
      throw new TypeError("Cannot split a store: the routing prefix must be a non-empty string");
    }
    checkPrefix(prefix);
    this.prefix = prefix;
    this.matching = options.matching;
    this.rest = options.rest;
    this.description = `${this.rest.description} (${prefix}* in ${this.matching.description})`;
    const a = this.matching.capabilities;
    const b = this.rest.capabilities;
    this.capabilities = Object.freeze({
      write: a.write && b.write,
      list: a.list && b.list,
      conditionalPut: a.conditionalPut && b.conditionalPut,
    });
  }

  get(key: string, options?: GetOptions): Promise<GetResult> {
    return this.#route(key).get(key, options);
  }

  head(key: string, options?: StoreCallOptions): Promise<HeadResult> {
    return this.#route(key).head(key, options);
  }

  put(key: string, body: Uint8Array, options?: PutOptions): Promise<{ etag: string }> {
    return this.#route(key).put(key, body, options);
  }

  delete(key: string, options?: StoreCallOptions): Promise<void> {
    return this.#route(key).delete(key, options);
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncGenerator<ListItem> {
    checkPrefix(prefix);
    if (prefix.startsWith(this.prefix)) {
      yield* this.matching.list(prefix, options);
    } else if (this.prefix.startsWith(prefix)) {
      yield* merge(this.#matchingUnder(prefix, options), this.#restOutside(prefix, options));
    } else {
      yield* this.rest.list(prefix, options);
    }
  }

  #route(key: string): BlobStore {
    return typeof key === "string" && key.startsWith(this.prefix) ? this.matching : this.rest;
  }

  /** The matching side of a listing whose prefix is shorter than the split: only keys under the split. */
  async *#matchingUnder(prefix: string, options: ListOptions): AsyncGenerator<ListItem> {
    const slash = options.delimiter ? this.prefix.indexOf(options.delimiter, prefix.length) : -1;
    if (slash === -1) {
      // No delimiter inside the split prefix past `prefix`, so the store rolls keys up where we would.
      yield* this.matching.list(this.prefix, options);
      return;
    }
    // Every key under the split rolls up to the same folder.
    if (await hasAny(this.matching.list(this.prefix, { signal: options.signal }), () => true)) {
      yield { type: "prefix", prefix: this.prefix.slice(0, slash + 1) };
    }
  }

  /** The rest side of a listing: keys under the split are the other store's, so they are skipped. */
  async *#restOutside(prefix: string, options: ListOptions): AsyncGenerator<ListItem> {
    for await (const item of this.rest.list(prefix, options)) {
      if (item.type === "object") {
        if (!item.key.startsWith(this.prefix)) yield item;
      } else if (item.prefix.startsWith(this.prefix)) {
        continue;
      } else if (!this.prefix.startsWith(item.prefix)) {
        yield item;
      } else {
        // A folder that holds the split prefix is ours only if it also holds a key outside the split.
        const outside = (key: string) => !key.startsWith(this.prefix);
        if (await hasAny(this.rest.list(item.prefix, { signal: options.signal }), outside)) yield item;
      }
    }
  }
}

async function hasAny(items: AsyncIterable<ListItem>, test: (key: string) => boolean): Promise<boolean> {
  for await (const item of items) {
    if (item.type === "object" && test(item.key)) return true;
  }
  return false;
}

function itemKey(item: ListItem): string {
  return item.type === "object" ? item.key : item.prefix;
}

/** Merges two listings in key order; a folder both sides hold is listed once. */
async function* merge(a: AsyncIterable<ListItem>, b: AsyncIterable<ListItem>): AsyncGenerator<ListItem> {
  const left = a[Symbol.asyncIterator]();
  const right = b[Symbol.asyncIterator]();
  try {
    let x = await left.next();
    let y = await right.next();
    while (!x.done || !y.done) {
      if (y.done || (!x.done && compareKeys(itemKey(x.value), itemKey(y.value)) < 0)) {
        yield (x as IteratorYieldResult<ListItem>).value;
        x = await left.next();
      } else if (x.done || compareKeys(itemKey(x.value), itemKey(y.value)) > 0) {
        yield y.value;
        y = await right.next();
      } else {
        yield x.value;
        x = await left.next();
        y = await right.next();
      }
    }
  } finally {
    await Promise.all([left.return?.(), right.return?.()]);
  }
}
