/**
 * Wrappers that count the calls made to a real store or chunk source, so a test can assert what was (not)
 * fetched.
 *
 * @module
 */

import type { ChunkGetOptions, ChunkSource } from "../../src/chunk/source.ts";
import type { ChunkId } from "../../src/manifest/types.ts";
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

/**
 * A {@linkcode BlobStore} that passes every call to `inner`: the base of the test stores that watch or
 * change some calls of a real store (override those).
 */
export class PassThroughStore implements BlobStore {
  protected readonly inner: BlobStore;

  constructor(inner: BlobStore) {
    this.inner = inner;
  }

  get description(): string {
    return this.inner.description;
  }

  get capabilities(): BlobStore["capabilities"] {
    return this.inner.capabilities;
  }

  get(key: string, options?: GetOptions): Promise<GetResult> {
    return this.inner.get(key, options);
  }

  head(key: string, options?: StoreCallOptions): Promise<HeadResult> {
    return this.inner.head(key, options);
  }

  put(key: string, body: Uint8Array, options?: PutOptions): Promise<{ etag: string }> {
    return this.inner.put(key, body, options);
  }

  list(prefix: string, options?: ListOptions): AsyncIterable<ListItem> {
    return this.inner.list(prefix, options);
  }

  delete(key: string, options?: StoreCallOptions): Promise<void> {
    return this.inner.delete(key, options);
  }
}

/**
 * A {@linkcode BlobStore} that passes every call to `inner` and records the keys it was asked to get.
 *
 * @example Counting chunk reads
 * ```ts
 * import { CountingStore } from "./counting.ts";
 * import { MemoryStore } from "../../src/store/memory.ts";
 *
 * const store = new CountingStore(new MemoryStore());
 * await store.get("chunks/00/x");
 * console.log(store.gets("chunks/")); // 1
 * ```
 */
export class CountingStore extends PassThroughStore {
  /** Every key passed to `get`, in call order. */
  readonly getKeys: string[] = [];

  /** How many gets asked for a key starting with `prefix`. */
  gets(prefix = ""): number {
    return this.getKeys.filter((k) => k.startsWith(prefix)).length;
  }

  /** Forgets the calls recorded so far. */
  reset(): void {
    this.getKeys.length = 0;
  }

  override get(key: string, options?: GetOptions): Promise<GetResult> {
    this.getKeys.push(key);
    return this.inner.get(key, options);
  }
}

/**
 * A {@linkcode ChunkSource} that passes every read to `inner`, counts the reads and the chunks in flight
 * at once, and can hold every read until its `gate` settles.
 *
 * @example Counting reads
 * ```ts
 * import { CountingChunkSource } from "./counting.ts";
 * import { MemoryChunkCache } from "../../src/chunk/source.ts";
 *
 * const source = new CountingChunkSource(new MemoryChunkCache({ capacityBytes: 1024 }));
 * await source.get(new Uint8Array(32).fill(1));
 * console.log(source.calls); // 1
 * ```
 */
export class CountingChunkSource implements ChunkSource {
  calls = 0;
  inFlight = 0;
  maxInFlight = 0;
  /** When set, each read waits for this promise before it reaches `inner`. */
  gate: Promise<void> | undefined;
  /** Called at the start of every read, with the number of reads so far. */
  onCall: ((calls: number) => void) | undefined;
  readonly #inner: ChunkSource;

  constructor(inner: ChunkSource) {
    this.#inner = inner;
  }

  get description(): string {
    return this.#inner.description;
  }

  async get(id: ChunkId, options: ChunkGetOptions = {}): Promise<Uint8Array | undefined> {
    this.calls++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      this.onCall?.(this.calls);
      if (this.gate) await this.gate;
      options.signal?.throwIfAborted();
      return await this.#inner.get(id, options);
    } finally {
      this.inFlight--;
    }
  }
}
