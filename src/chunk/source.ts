/**
 * Where a reader gets chunks from: the remote store, and the caches in front of it (memory, a local cache
 * directory, other processes' read-only cache directories), probed in order by a
 * {@linkcode LayeredChunkSource}. Every source hands out verified, uncompressed bytes: a chunk is checked
 * against its id wherever it came from.
 *
 * @module
 */

import { TesseraError } from "../errors.ts";
import { forEachLimit } from "../pool.ts";
import type { BlobStore } from "../store/types.ts";
import { decodeChunk } from "./codec.ts";
import { type ChunkId, idsEqual, idToHex, ZERO_ID } from "./ids.ts";
import { chunkKey, packKey } from "./keys.ts";
import type { ChunkLocation } from "./pack.ts";

/** Options of {@linkcode ChunkSource.get}. */
export interface ChunkGetOptions {
  /** Cancels the call; it then rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Where the store keeps the chunk, when a manifest says: inside a pack. Caches ignore it.
   * @default {its own object} */
  where?: ChunkLocation | undefined;
  /** The database the chunks belong to: a store read through after the one whose manifest gave `where`
   * looks them up in its own snapshot of it. */
  database?: string | undefined;
}

/** One chunk of a {@linkcode ChunkSource.getMany} call. */
export interface ChunkRequest {
  id: ChunkId;
  /** Where the store keeps it (see {@linkcode ChunkGetOptions.where}). */
  where?: ChunkLocation | undefined;
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
  /**
   * Reads several chunks at once, as one request where the source can (neighbours in one pack); answers
   * in the order asked, `undefined` for each chunk the source lacks. Sources without it are asked one
   * chunk at a time ({@linkcode getChunks}).
   */
  getMany?(requests: readonly ChunkRequest[], options?: ChunkGetOptions): Promise<(Uint8Array | undefined)[]>;
  /** Resolves once the cache writes reads started have finished (see {@linkcode LayeredChunkSource}). */
  settled?(): Promise<void>;
}

// Names the request a source's TesseraError came from; other errors (aborts, bugs) pass as they are.
const blame = (request: number) => (error: unknown): never => {
  if (error instanceof TesseraError && !(error instanceof ChunkRequestError)) {
    throw new ChunkRequestError(error, request);
  }
  throw error;
};

/**
 * A {@linkcode ChunkSource.getMany} call failed reading `requests[request]`: the error the source met, with
 * its code and message, and which chunk it was reading.
 */
export class ChunkRequestError extends TesseraError {
  readonly request: number;
  constructor(error: TesseraError, request: number) {
    super(error.code, error.message, { cause: error });
    this.request = request;
  }
}

/** Reads `requests` from `source` with one `getMany` call when it has one, else chunk by chunk. */
export async function getChunks(
  source: ChunkSource,
  requests: readonly ChunkRequest[],
  options: ChunkGetOptions = {},
): Promise<(Uint8Array | undefined)[]> {
  if (source.getMany) return await source.getMany(requests, options);
  const { signal } = options;
  return await Promise.all(
    requests.map((r, i) => source.get(r.id, { signal, where: r.where }).catch(blame(i))),
  );
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
  readonly #locate: ChunkLocator | undefined;

  /** With `locate`, a chunk asked for at a place this store lacks is looked for where this store's own
   * newest snapshot of the database keeps it (a store read through after another). */
  constructor(store: BlobStore, options: { locate?: ChunkLocator | undefined } = {}) {
    this.#store = store;
    this.#locate = options.locate;
    this.description = store.description;
  }

  async get(id: ChunkId, options: ChunkGetOptions = {}): Promise<Uint8Array | undefined> {
    return (await this.getMany([{ id, where: options.where }], options))[0];
  }

  /**
   * Reads chunks kept in packs with one ranged GET per span of neighbours (chunks that follow each other in
   * one pack, in the order asked), and each chunk kept as its own object with its own GET.
   */
  async getMany(
    requests: readonly ChunkRequest[],
    options: ChunkGetOptions = {},
  ): Promise<(Uint8Array | undefined)[]> {
    return (await this.#read(requests, options)).map((answer) => answer?.bytes);
  }

  /**
   * Like {@linkcode StoreChunkSource.getMany}, answering each chunk's stored object bytes (checked: they
   * decode to bytes whose SHA-256 is the id), for a writer that moves chunks into a new pack as they are.
   */
  async getObjects(
    requests: readonly ChunkRequest[],
    options: ChunkGetOptions = {},
  ): Promise<(Uint8Array | undefined)[]> {
    return (await this.#read(requests, options)).map((answer) => answer?.object);
  }

  async #read(
    requests: readonly ChunkRequest[],
    options: ChunkGetOptions,
  ): Promise<({ bytes: Uint8Array; object: Uint8Array } | undefined)[]> {
    const { signal } = options;
    for (const { id } of requests) {
      if (idsEqual(id, ZERO_ID)) {
        throw new RangeError("Cannot get the all-zero chunk from a store: zero chunks are never stored");
      }
    }
    const answers: ({ bytes: Uint8Array; object: Uint8Array } | undefined)[] = new Array(requests.length)
      .fill(undefined);
    // Spans go out a few at a time: a group of chunks kept as their own objects is one GET each.
    await forEachLimit(spans(requests), async (span) => {
      let current = span[0]!;
      try {
        const first = requests[span[0]!]!;
        if (first.where === undefined) {
          const got = await this.#store.get(chunkKey(first.id), { signal });
          if (got.status === "ok") {
            answers[span[0]!] = { bytes: await decodeChunk(first.id, got.body), object: got.body };
          }
          return;
        }
        const last = requests[span[span.length - 1]!]!.where!;
        const offset = first.where.offset;
        const length = last.offset + last.length - offset;
        const key = packKey(first.where.pack);
        const got = await this.#store.get(key, { signal, range: { offset, length } });
        if (got.status !== "ok") return;
        // A pack shorter than the manifest says is a damaged store: each chunk it cut off fails to decode.
        for (const i of span) {
          current = i;
          const { id, where } = requests[i]!;
          const at = where!.offset - offset;
          // A copy when it is a part of the run: a chunk kept for long must not keep the whole run's bytes.
          const object = span.length === 1 ? got.body : got.body.slice(at, at + where!.length);
          try {
            answers[i] = { bytes: await decodeChunk(id, object), object };
          } catch (error) {
            if (!(error instanceof TesseraError)) throw error;
            throw new TesseraError(error.code, `${error.message} (in ${key} at byte ${where!.offset})`, {
              cause: error,
            });
          }
        }
      } catch (error) {
        blame(current)(error);
      }
    }, { concurrency: SPANS_AT_ONCE, signal });
    // A place another store's manifest gave, which this store lacks: its own newest snapshot of the
    // database may keep the chunk elsewhere (each store has packs of its own).
    const lost = requests.flatMap((r, i) => (answers[i] === undefined && r.where !== undefined ? [i] : []));
    if (lost.length > 0 && this.#locate && options.database !== undefined) {
      const places = await this.#locate(options.database, signal);
      const again = lost.filter((i) => places.has(idToHex(requests[i]!.id)));
      const found = await this.#read(
        again.map((i) => ({ id: requests[i]!.id, where: places.get(idToHex(requests[i]!.id)) })),
        { signal },
      ).catch((error) => {
        if (error instanceof ChunkRequestError) {
          throw new ChunkRequestError(error.cause as TesseraError, again[error.request]!);
        }
        throw error;
      });
      again.forEach((i, k) => (answers[i] = found[k]));
    }
    return answers;
  }
}

/** How many spans (GETs) one {@linkcode StoreChunkSource.getMany} call has in flight. */
const SPANS_AT_ONCE = 8;

/**
 * Where a store keeps the chunks of its own newest snapshot of a database: hex id → place (`undefined` for a
 * chunk kept as its own object). Given by a layer that reads manifests (`manifest/locate.ts`).
 */
export type ChunkLocator = (
  database: string,
  signal?: AbortSignal,
) => Promise<ReadonlyMap<string, ChunkLocation | undefined>>;

/**
 * Groups the indexes of `requests` into spans a store reads with one GET: each chunk kept as its own
 * object alone, and runs of chunks that follow each other in one pack (`offset` where the previous ends).
 */
function spans(requests: readonly ChunkRequest[]): number[][] {
  const out: number[][] = [];
  let current: number[] = [];
  let end: { pack: string; at: number } | undefined;
  requests.forEach(({ where }, i) => {
    const pack = where ? idToHex(where.pack) : undefined;
    if (where === undefined || end === undefined || end.pack !== pack || end.at !== where.offset) {
      if (current.length > 0) out.push(current);
      current = [];
    }
    current.push(i);
    end = where ? { pack: pack!, at: where.offset + where.length } : undefined;
  });
  if (current.length > 0) out.push(current);
  return out;
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
  readonly #pending = new Set<Promise<void>>();
  #pendingBytes = 0;

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
      await Promise.all(this.#targets(i).map((cache) => this.#put(cache, id, bytes)));
      return bytes;
    }
    return undefined;
  }

  /**
   * Reads many chunks, each layer asked at once for what the layers before it lacked. What a layer finds
   * is put into the caches before it in the background, with at most {@linkcode BACKGROUND_CACHE_BYTES}
   * in flight; {@linkcode LayeredChunkSource.settled} waits for those writes.
   */
  async getMany(
    requests: readonly ChunkRequest[],
    options: ChunkGetOptions = {},
  ): Promise<(Uint8Array | undefined)[]> {
    const answers: (Uint8Array | undefined)[] = new Array(requests.length).fill(undefined);
    let todo = requests.map((_, i) => i);
    for (let i = 0; i < this.#layers.length && todo.length > 0; i++) {
      const asked = todo;
      const got = await getChunks(this.#layers[i]!, asked.map((k) => requests[k]!), options).catch(
        (error) => {
          if (!(error instanceof ChunkRequestError)) throw error;
          throw new ChunkRequestError(error.cause as TesseraError, asked[error.request]!);
        },
      );
      const rest: number[] = [];
      const targets = this.#targets(i);
      for (const [n, k] of todo.entries()) {
        const bytes = got[n];
        if (bytes === undefined) {
          rest.push(k);
          continue;
        }
        answers[k] = bytes;
        for (const cache of targets) this.#background(cache, requests[k]!.id, bytes);
      }
      todo = rest;
      while (this.#pendingBytes > BACKGROUND_CACHE_BYTES || this.#pending.size > BACKGROUND_CACHE_WRITES) {
        await Promise.race(this.#pending);
      }
    }
    return answers;
  }

  /** Resolves once every cache write {@linkcode LayeredChunkSource.getMany} started has finished. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
  }

  // The caches a chunk found in layer `i` goes into: the writable layers before it, and `populate`.
  #targets(i: number): ChunkCache[] {
    const targets = new Set<ChunkCache>();
    for (const before of this.#layers.slice(0, i)) if (isChunkCache(before)) targets.add(before);
    for (const cache of this.#populate) targets.add(cache);
    targets.delete(this.#layers[i] as ChunkCache);
    return [...targets];
  }

  #put(cache: ChunkCache, id: ChunkId, bytes: Uint8Array): Promise<void> {
    return cache.put(id, bytes).catch((error) => {
      try {
        this.#onCacheError(error, cache);
      } catch {
        // A report that fails must not fail the read, nor go unhandled in the background.
      }
    });
  }

  #background(cache: ChunkCache, id: ChunkId, bytes: Uint8Array): void {
    this.#pendingBytes += bytes.length;
    const write: Promise<void> = this.#put(cache, id, bytes).finally(() => {
      this.#pending.delete(write);
      this.#pendingBytes -= bytes.length;
    });
    this.#pending.add(write);
  }
}

/** The most bytes {@linkcode LayeredChunkSource.getMany} lets wait for cache writes at once (16 MiB). */
export const BACKGROUND_CACHE_BYTES = 16 * 1024 * 1024;
/** The most cache writes it lets wait at once (each may hold a file open). */
const BACKGROUND_CACHE_WRITES = 64;
