/**
 * Where a reader gets chunks from: the remote store, and the caches in front of it (memory, a local cache
 * directory, other processes' read-only cache directories), probed in order by a
 * {@linkcode LayeredChunkSource}. Every source hands out verified, uncompressed bytes: a chunk is checked
 * against its id wherever it came from.
 *
 * @module
 */

import type { BlobStore } from "../store/types.ts";
import { decodeChunk } from "./codec.ts";
import { type ChunkId, idsEqual, idToHex, ZERO_ID } from "./ids.ts";
import { chunkKey } from "./keys.ts";

/** Options of {@linkcode ChunkSource.get}. */
export interface ChunkGetOptions {
  /** Cancels the call; it then rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
}

/** A place chunks can be read from. */
export interface ChunkSource {
  /** Where the chunks come from, for messages. */
  readonly description: string;
  /**
   * Reads a chunk.
   *
   * @returns Its uncompressed bytes, checked against `id`, or `undefined` when this source lacks it.
   */
  get(id: ChunkId, options?: ChunkGetOptions): Promise<Uint8Array | undefined>;
}

/** A chunk source that can also keep chunks. */
export interface ChunkCache extends ChunkSource {
  /**
   * Keeps a chunk. The caller vouches that `bytes` are the uncompressed bytes whose SHA-256 is `id`.
   * A read-only cache ignores the call.
   */
  put(id: ChunkId, bytes: Uint8Array): Promise<void>;
}

/** True when `source` can keep chunks. */
export function isChunkCache(source: ChunkSource): source is ChunkCache {
  return typeof (source as Partial<ChunkCache>).put === "function";
}

/**
 * Reads chunk objects from a {@linkcode BlobStore} and verifies them. The all-zero id is never stored, so
 * asking for it is a caller's error (`RangeError`): callers fill zero chunks themselves.
 *
 * @example Reading a chunk from a store
 * ```ts
 * import { MemoryStore } from "../store/memory.ts";
 * import { StoreChunkSource } from "./source.ts";
 * import { chunkId } from "./ids.ts";
 *
 * const source = new StoreChunkSource(new MemoryStore());
 * const id = await chunkId(new Uint8Array([1, 2, 3]));
 * console.log(await source.get(id)); // undefined: the store is empty
 * ```
 */
export class StoreChunkSource implements ChunkSource {
  readonly description: string;
  readonly #store: BlobStore;

  constructor(store: BlobStore) {
    this.#store = store;
    this.description = store.description;
  }

  async get(id: ChunkId, options: ChunkGetOptions = {}): Promise<Uint8Array | undefined> {
    if (idsEqual(id, ZERO_ID)) {
      throw new RangeError("Cannot get the all-zero chunk from a store: zero chunks are never stored");
    }
    const got = await this.#store.get(chunkKey(id), { signal: options.signal });
    if (got.status !== "ok") return undefined;
    return await decodeChunk(id, got.body);
  }
}

/** Options of {@linkcode MemoryChunkCache}. */
export interface MemoryChunkCacheOptions {
  /** The most bytes of chunks held at once. */
  capacityBytes: number;
}

/**
 * A chunk cache in memory that holds at most `capacityBytes` of chunks and drops the least recently used
 * first. Bytes are copied in and out, so no caller can change what another reads.
 *
 * @example Keeping the most recent chunks
 * ```ts
 * import { MemoryChunkCache } from "./source.ts";
 * import { chunkId } from "./ids.ts";
 *
 * const cache = new MemoryChunkCache({ capacityBytes: 1 << 20 });
 * const bytes = new Uint8Array(4096).fill(7);
 * const id = await chunkId(bytes);
 * await cache.put(id, bytes);
 * console.log((await cache.get(id))?.length); // 4096
 * ```
 */
export class MemoryChunkCache implements ChunkCache {
  readonly description = "memory cache";
  readonly capacityBytes: number;
  // A Map iterates in insertion order: re-inserting on every hit keeps the least recently used first.
  readonly #entries = new Map<string, Uint8Array>();
  #bytes = 0;

  constructor(options: MemoryChunkCacheOptions) {
    const { capacityBytes } = options;
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes < 0) {
      throw new RangeError(`Cannot create a memory chunk cache: capacityBytes ${capacityBytes} is invalid`);
    }
    this.capacityBytes = capacityBytes;
  }

  /** The bytes of chunks held now. */
  get sizeBytes(): number {
    return this.#bytes;
  }

  /** The number of chunks held now. */
  get count(): number {
    return this.#entries.size;
  }

  async get(id: ChunkId, options: ChunkGetOptions = {}): Promise<Uint8Array | undefined> {
    options.signal?.throwIfAborted();
    const key = idToHex(id);
    const bytes = this.#entries.get(key);
    if (bytes === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, bytes);
    return new Uint8Array(bytes);
  }

  async put(id: ChunkId, bytes: Uint8Array): Promise<void> {
    const key = idToHex(id);
    this.#remove(key);
    if (bytes.length > this.capacityBytes) return;
    // new Uint8Array copies even a Node Buffer, whose slice() would share memory.
    this.#entries.set(key, new Uint8Array(bytes));
    this.#bytes += bytes.length;
    for (const [oldest, old] of this.#entries) {
      if (this.#bytes <= this.capacityBytes) break;
      this.#entries.delete(oldest);
      this.#bytes -= old.length;
    }
  }

  #remove(key: string): void {
    const old = this.#entries.get(key);
    if (old === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= old.length;
  }
}

/** Options of {@linkcode LayeredChunkSource}. */
export interface LayeredChunkSourceOptions {
  /** Caches that receive every chunk a layer finds, besides the writable layers before that layer. */
  populate?: ChunkCache[];
  /**
   * Called when a cache fails to keep a chunk. A cache that cannot write (a full disk) must not fail a
   * read that succeeded.
   * @default {ignores the failure}
   */
  onCacheError?: (error: unknown, cache: ChunkCache) => void;
}

/**
 * Probes sources in order and returns the first hit, after putting it into every cache it passed on the
 * way (and into `populate`), so the next read of the chunk stops earlier.
 *
 * @example Memory, then a store
 * ```ts
 * import { LayeredChunkSource, MemoryChunkCache, StoreChunkSource } from "./source.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * const chunks = new LayeredChunkSource([
 *   new MemoryChunkCache({ capacityBytes: 64 << 20 }),
 *   new StoreChunkSource(new MemoryStore()),
 * ]);
 * console.log(chunks.description); // memory cache, then memory
 * ```
 */
export class LayeredChunkSource implements ChunkSource {
  readonly description: string;
  readonly #layers: readonly ChunkSource[];
  readonly #populate: readonly ChunkCache[];
  readonly #onCacheError: (error: unknown, cache: ChunkCache) => void;

  constructor(layers: readonly ChunkSource[], options: LayeredChunkSourceOptions = {}) {
    if (layers.length === 0) throw new TypeError("Cannot layer chunk sources: give at least one");
    this.#layers = [...layers];
    this.#populate = [...(options.populate ?? [])];
    this.#onCacheError = options.onCacheError ?? (() => {});
    this.description = this.#layers.map((l) => l.description).join(", then ");
  }

  async get(id: ChunkId, options: ChunkGetOptions = {}): Promise<Uint8Array | undefined> {
    for (let i = 0; i < this.#layers.length; i++) {
      const layer = this.#layers[i]!;
      const bytes = await layer.get(id, options);
      if (bytes === undefined) continue;
      const targets = new Set<ChunkCache>();
      for (const before of this.#layers.slice(0, i)) if (isChunkCache(before)) targets.add(before);
      for (const cache of this.#populate) targets.add(cache);
      targets.delete(layer as ChunkCache);
      await Promise.all(
        [...targets].map((cache) => cache.put(id, bytes).catch((error) => this.#onCacheError(error, cache))),
      );
      return bytes;
    }
    return undefined;
  }
}
