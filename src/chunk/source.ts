/**
 * Where a reader gets chunks from: the remote store, and the caches in front of it (memory, a local cache
 * directory, other processes' read-only cache directories), probed in order by a
 * {@linkcode LayeredChunkSource}. Every source hands out verified, uncompressed bytes: a chunk is checked
 * against its id wherever it came from.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, stat, unlink, utimes } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { ChunkId } from "../manifest/types.ts";
import { chunkKey } from "../manifest/keys.ts";
import type { BlobStore } from "../store/types.ts";
import { decodeChunk, encodeChunk, type EncodeChunkOptions } from "./codec.ts";
import { checkId, idsEqual, idToHex, ZERO_ID } from "./ids.ts";

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

/** Options of {@linkcode DirectoryChunkCache}. */
export interface DirectoryChunkCacheOptions {
  /** The cache directory; created on the first write. */
  directory: string;
  /** Sub-directories the chunks are spread over. Processes sharing a directory must agree on it.
   * @default {128} */
  numShards?: number;
  /** The most chunk files kept in all, spread evenly over the shards (at least one per shard).
   * @default {10000} */
  capacity?: number;
  /** Never write, touch, evict or delete anything: for another process's cache.
   * @default {false} */
  readOnly?: boolean;
  /** How chunk files are written.
   * @default {"auto"} */
  codec?: EncodeChunkOptions["codec"];
}

/** Temporary files older than this were left by a process that died mid-write. */
const STALE_TEMP_MS = 10 * 60 * 1000;
const ID_FILE = /^[0-9a-f]{64}$/;
const TEMP_PREFIX = ".tessera-";

/**
 * A chunk cache in a local directory, safe to share between processes. Each chunk is a file
 * `<directory>/<shard>/<id>` holding the chunk object as the store holds it, so a cache directory is
 * portable and every read is verified: a damaged file is deleted and read as a miss. Files are written
 * to a temporary name and renamed, so no process sees part of one. A shard that grows past its share of
 * `capacity` drops its least recently used files (a hit refreshes a file's mtime).
 *
 * @example A cache directory in front of a store
 * ```ts
 * import { DirectoryChunkCache, LayeredChunkSource, StoreChunkSource } from "./source.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * const cache = new DirectoryChunkCache({ directory: "/tmp/tessera-cache-example", capacity: 1000 });
 * const chunks = new LayeredChunkSource([cache, new StoreChunkSource(new MemoryStore())]);
 * console.log(chunks.description);
 * ```
 */
export class DirectoryChunkCache implements ChunkCache {
  /** The cache directory's absolute path. */
  readonly directory: string;
  readonly description: string;
  readonly numShards: number;
  readonly capacity: number;
  readonly readOnly: boolean;
  readonly #perShard: number;
  readonly #shardDigits: number;
  readonly #codec: NonNullable<EncodeChunkOptions["codec"]>;

  constructor(options: DirectoryChunkCacheOptions) {
    const { directory, numShards = 128, capacity = 10000, readOnly = false, codec = "auto" } = options;
    if (typeof directory !== "string" || directory === "") {
      throw new TypeError("Cannot open a chunk cache directory: expected a directory path");
    }
    if (!Number.isSafeInteger(numShards) || numShards < 1 || numShards > 65536) {
      throw new RangeError(
        `Cannot open chunk cache "${directory}": numShards ${numShards} is not 1 to 65536`,
      );
    }
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(
        `Cannot open chunk cache "${directory}": capacity ${capacity} is not a positive integer`,
      );
    }
    this.directory = resolve(directory);
    this.description = `cache directory ${this.directory}${readOnly ? " (read-only)" : ""}`;
    this.numShards = numShards;
    this.capacity = capacity;
    this.readOnly = readOnly;
    // Rounding down keeps the total within capacity whenever capacity >= numShards.
    this.#perShard = Math.max(1, Math.floor(capacity / numShards));
    this.#shardDigits = numShards <= 256 ? 2 : 4;
    this.#codec = codec;
  }

  /** The path of the file that holds chunk `id`. */
  pathOf(id: ChunkId): string {
    return join(this.#shardDir(id), idToHex(id));
  }

  async get(id: ChunkId, options: ChunkGetOptions = {}): Promise<Uint8Array | undefined> {
    options.signal?.throwIfAborted();
    const path = this.pathOf(id);
    let object: Uint8Array;
    try {
      const buffer = await readFile(path, options.signal ? { signal: options.signal } : {});
      object = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (isMissing(error)) return undefined;
      throw error;
    }
    let bytes: Uint8Array;
    try {
      bytes = await decodeChunk(id, object);
    } catch {
      // Never serve a damaged file; the next write of this chunk replaces it.
      if (!this.readOnly) await unlink(path).catch(() => {});
      return undefined;
    }
    if (!this.readOnly) {
      const now = new Date();
      await utimes(path, now, now).catch(() => {});
    }
    return bytes;
  }

  async put(id: ChunkId, bytes: Uint8Array): Promise<void> {
    if (this.readOnly) return;
    const dir = this.#shardDir(id);
    const name = idToHex(id);
    const object = encodeChunk(bytes, { codec: this.#codec });
    // Someone clearing the cache may remove the shard between mkdir and rename: then try again.
    for (let attempt = 1;; attempt++) {
      try {
        await writeThenRename(dir, name, object);
        break;
      } catch (error) {
        if (!isMissing(error) || attempt >= 3) throw error;
      }
    }
    await this.#evict(dir, name);
  }

  // Other processes add, touch and delete files in the same shard at any moment: every file may vanish
  // between listing and stat or unlink, which only means someone else got there first.
  async #evict(dir: string, keep: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    const ids = names.filter((n) => ID_FILE.test(n));
    const temps = names.filter((n) => n.startsWith(TEMP_PREFIX));
    const now = Date.now();
    for (const temp of temps) {
      const mtime = await mtimeOf(join(dir, temp));
      if (mtime !== undefined && now - mtime > STALE_TEMP_MS) await unlinkQuietly(join(dir, temp));
    }
    if (ids.length <= this.#perShard) return;
    const aged: { name: string; mtime: number }[] = [];
    for (const name of ids) {
      if (name === keep) continue;
      const mtime = await mtimeOf(join(dir, name));
      if (mtime !== undefined) aged.push({ name, mtime });
    }
    aged.sort((a, b) => a.mtime - b.mtime || (a.name < b.name ? -1 : 1));
    const excess = aged.length + 1 - this.#perShard;
    for (const { name } of aged.slice(0, Math.max(0, excess))) await unlinkQuietly(join(dir, name));
  }

  #shardDir(id: ChunkId): string {
    checkId(id, "chunk id");
    const lead = ((id[0]! << 24) | (id[1]! << 16) | (id[2]! << 8) | id[3]!) >>> 0;
    const shard = (lead % this.numShards).toString(16).padStart(this.#shardDigits, "0");
    return join(this.directory, shard);
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

async function writeThenRename(dir: string, name: string, object: Uint8Array): Promise<void> {
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `${TEMP_PREFIX}${randomBytes(8).toString("hex")}.tmp`);
  try {
    const handle = await open(temp, "wx");
    try {
      await handle.writeFile(object);
    } finally {
      await handle.close();
    }
    // No fsync: a file cut short by a crash fails verification on read and counts as a miss.
    await rename(temp, join(dir, name));
  } catch (error) {
    await unlinkQuietly(temp);
    throw error;
  }
}

async function mtimeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

async function unlinkQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => {});
}

function isMissing(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}
