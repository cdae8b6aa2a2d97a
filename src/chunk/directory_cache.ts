/**
 * A chunk cache in a local directory, shared by processes and kept across runs: the Deno, Bun and Node
 * side of the chunk sources in `source.ts` (the browser entry point has no filesystem).
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, stat, unlink, utimes } from "node:fs/promises";
import { join, resolve } from "node:path";
import { decodeChunk, encodeChunk, type EncodeChunkOptions } from "./codec.ts";
import { checkId, type ChunkId, idToHex } from "./ids.ts";
import type { ChunkCache, ChunkGetOptions } from "./source.ts";

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
 * import { DirectoryChunkCache } from "./directory_cache.ts";
 * import { LayeredChunkSource, StoreChunkSource } from "./source.ts";
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
