/**
 * A {@linkcode BlobStore} wrapper that counts what the benchmark sends to a real store: requests by kind
 * and the bytes that went up and came down, so each step can report what it cost besides time.
 *
 * @module
 */

import type {
  BlobStore,
  GetOptions,
  GetResult,
  HeadResult,
  ListItem,
  ListOptions,
  PutOptions,
  StoreCallOptions,
} from "../../src/store/types.ts";

/** Requests and bytes a store saw. */
export interface StoreCounts {
  /** GETs of `chunks/` and `packs/` keys (data and index chunks; a ranged GET of a pack reads a run). */
  chunkGets: number;
  /** GETs of other keys (pointers, manifests). */
  otherGets: number;
  heads: number;
  puts: number;
  /** Bytes of every PUT body. */
  bytesUp: number;
  /** Bytes of every GET body received. */
  bytesDown: number;
}

/** A store that passes every call on and counts it; {@linkcode CountingStore.take} reads and resets. */
export class CountingStore implements BlobStore {
  readonly #inner: BlobStore;
  #counts: StoreCounts = emptyCounts();

  constructor(inner: BlobStore) {
    this.#inner = inner;
  }

  get description(): string {
    return this.#inner.description;
  }

  get capabilities(): BlobStore["capabilities"] {
    return this.#inner.capabilities;
  }

  /** The counts since the last call, and a fresh start. */
  take(): StoreCounts {
    const counts = this.#counts;
    this.#counts = emptyCounts();
    return counts;
  }

  async get(key: string, options?: GetOptions): Promise<GetResult> {
    if (key.startsWith("chunks/") || key.startsWith("packs/")) this.#counts.chunkGets++;
    else this.#counts.otherGets++;
    const got = await this.#inner.get(key, options);
    if (got.status === "ok") this.#counts.bytesDown += got.body.length;
    return got;
  }

  head(key: string, options?: StoreCallOptions): Promise<HeadResult> {
    this.#counts.heads++;
    return this.#inner.head(key, options);
  }

  put(key: string, body: Uint8Array, options?: PutOptions): Promise<{ etag: string }> {
    this.#counts.puts++;
    this.#counts.bytesUp += body.length;
    return this.#inner.put(key, body, options);
  }

  list(prefix: string, options?: ListOptions): AsyncIterable<ListItem> {
    return this.#inner.list(prefix, options);
  }

  delete(key: string, options?: StoreCallOptions): Promise<void> {
    return this.#inner.delete(key, options);
  }
}

function emptyCounts(): StoreCounts {
  return { chunkGets: 0, otherGets: 0, heads: 0, puts: 0, bytesUp: 0, bytesDown: 0 };
}
