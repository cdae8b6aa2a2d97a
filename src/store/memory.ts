/**
 * A store in memory: for tests, for a process's own scratch, and as the fastest layer of a chunk cache.
 *
 * @module
 */

import { TesseraError } from "../errors.ts";
import { checkKey, checkPrefix, compareKeys } from "./keys.ts";
import { rollUp } from "./_list.ts";
import { checkRange, rangeBounds } from "../net/range.ts";
import type {
  BlobInfo,
  BlobStore,
  GetOptions,
  GetResult,
  HeadResult,
  ListItem,
  ListOptions,
  PutOptions,
  StoreCallOptions,
} from "./types.ts";

interface Entry {
  bytes: Uint8Array;
  etag: string;
  lastModified: Date;
}

/**
 * A {@linkcode BlobStore} in memory. Bytes are copied in and out, so callers cannot change what is stored.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./memory.ts";
 * const store = new MemoryStore();
 * await store.put("a/b", new TextEncoder().encode("hi"));
 * const got = await store.get("a/b");
 * console.log(got.status === "ok" && new TextDecoder().decode(got.body)); // hi
 * ```
 */
export class MemoryStore implements BlobStore {
  readonly description = "memory";
  readonly capabilities = Object.freeze({ write: true, list: true, conditionalPut: true });
  readonly #objects = new Map<string, Entry>();
  #version = 0;

  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    options.signal?.throwIfAborted();
    checkKey(key);
    checkRange(options.range);
    const entry = this.#objects.get(key);
    if (!entry) return { status: "not_found" };
    if (options.ifNoneMatch === entry.etag) return { status: "not_modified", etag: entry.etag };
    const [start, end] = rangeBounds(options.range, entry.bytes.length);
    return { status: "ok", body: entry.bytes.slice(start, end), ...info(key, entry) };
  }

  async head(key: string, options: StoreCallOptions = {}): Promise<HeadResult> {
    options.signal?.throwIfAborted();
    checkKey(key);
    const entry = this.#objects.get(key);
    return entry ? { status: "ok", ...info(key, entry) } : { status: "not_found" };
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<{ etag: string }> {
    options.signal?.throwIfAborted();
    checkKey(key);
    if (options.ifNoneMatch === "*" && this.#objects.has(key)) {
      throw new TesseraError("PRECONDITION_FAILED", `Cannot create "${key}" in memory: it already exists`);
    }
    const etag = `"m${++this.#version}"`;
    this.#objects.set(key, { bytes: body.slice(), etag, lastModified: new Date() });
    return { etag };
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncGenerator<ListItem> {
    options.signal?.throwIfAborted();
    checkPrefix(prefix);
    const keys = [...this.#objects.keys()].filter((k) => k.startsWith(prefix)).sort(compareKeys);
    const objects = keys.flatMap((key) => {
      const entry = this.#objects.get(key);
      return entry ? [info(key, entry)] : [];
    });
    for await (const item of rollUp(objects, prefix, options.delimiter)) {
      options.signal?.throwIfAborted();
      yield item;
    }
  }

  async delete(key: string, options: StoreCallOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    checkKey(key);
    this.#objects.delete(key);
  }

  /** Total bytes held, for tests and cache accounting. */
  get size(): number {
    let total = 0;
    for (const entry of this.#objects.values()) total += entry.bytes.length;
    return total;
  }
}

function info(key: string, entry: Entry): BlobInfo {
  return { key, size: entry.bytes.length, etag: entry.etag, lastModified: entry.lastModified };
}
