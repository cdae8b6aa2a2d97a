/**
 * Snapshot images for the wasm engine: a manifest's chunk list, verified, and the chunks it names, held in
 * memory by id in a {@linkcode ChunkMemory} shared by every image a replica holds, so a refresh costs only the
 * chunks that changed.
 *
 * An image is *eager* (every chunk fetched and held before it is served) or *lazy* (only its chunk list is
 * read; chunks come into memory when a query needs them, and leave it under the memory cap).
 *
 * A served image is rewritten in two ways, both in its own copy of chunk 0 (every other chunk is the
 * store's bytes): the read/write version bytes (18-19) say rollback journal, so SQLite never looks for a WAL
 * that does not exist, and the file change counter (24) and version-valid-for number (92) hold the image's
 * generation, unique per replica process, so SQLite drops its page cache whenever a connection moves to
 * another image.
 *
 * @module
 */

import type { ChunkSource } from "../chunk/source.ts";
import { idsEqual, idToHex, ZERO_ID } from "../chunk/ids.ts";
import type { IndexCache } from "../manifest/chunk_list.ts";
import type { ChunkId, ChunkLocation, Manifest } from "../manifest/types.ts";
import { readChunkList, readImage, type ReadProblem } from "../restore/read_image.ts";

/** One snapshot, ready to serve: its chunk list is verified, and every chunk read is checked against its id. */
export interface SnapshotImage {
  readonly manifest: Manifest;
  /** Unique per process: written into the served header as the change counter. */
  readonly generation: number;
  readonly size: number;
  readonly chunkSize: number;
  /** Chunk 0 as served (the rewritten header copy). */
  readonly chunk0: Uint8Array;
  /** The ids of chunks 1 .. n-1, as the manifest lists them. */
  readonly ids: readonly ChunkId[];
  /** Where each of them lives in the store (format 2); `undefined` for its own object. */
  readonly locations: readonly (ChunkLocation | undefined)[];
  /** The memory keys of chunks 1 .. n-1 (hex ids); `""` for an all-zero chunk, which is never held. */
  readonly keys: readonly string[];
  /** True when chunks are fetched as queries need them; false when all were fetched before serving. */
  readonly lazy: boolean;
  /** When this process finished preparing the image, in milliseconds since the epoch. */
  readonly preparedMs: number;
  /** Chunks preparing it fetched (the rest were shared with images already held, or left for later). */
  readonly chunksFetched: number;
}

let nextGeneration = 1;

/** Returns a generation number no other image of this process has. */
export function newGeneration(): number {
  const generation = nextGeneration;
  nextGeneration = nextGeneration >= 0x7fff_ffff ? 1 : nextGeneration + 1;
  return generation;
}

/**
 * Rewrites a copy of chunk 0 to be served: rollback-journal version bytes, and `generation` as the change
 * counter and version-valid-for number.
 */
export function servedHeader(chunk0: Uint8Array, generation: number): Uint8Array {
  const copy = chunk0.slice();
  if (copy.length >= 100) {
    const view = new DataView(copy.buffer, copy.byteOffset, copy.byteLength);
    if (copy[18] === 2) copy[18] = 1;
    if (copy[19] === 2) copy[19] = 1;
    view.setUint32(24, generation);
    view.setUint32(92, generation);
  }
  return copy;
}

interface Held {
  bytes: Uint8Array;
  pins: number;
  /** Read since eviction last passed it: it gets a second chance (an LRU's order at a Map lookup's cost). */
  used: boolean;
}

/**
 * The chunks a replica holds in memory, by hex id. A chunk is *pinned* while something must keep it (an
 * eager image holds all of its chunks; a statement holds what it read while it waits for more), and counted
 * once however many pin it. Unpinned chunks stay, least recently used let go first, while all chunks held
 * fit in `capacityBytes`: the memory cap of lazy images, and the reuse cache of eager ones. Only pinned
 * chunks can take memory past the cap.
 */
export class ChunkMemory {
  readonly capacityBytes: number;
  readonly #held = new Map<string, Held>();
  /** The unpinned entries, oldest first (a Map iterates in insertion order); eviction gives an entry read
   * since it was queued a second chance (the CLOCK approximation of least recently used). */
  readonly #idle = new Map<string, Held>();
  #bytes = 0;
  #idleBytes = 0;
  #peakBytes = 0;

  /** @param capacityBytes Bytes of unpinned chunks kept. @default {0} */
  constructor(capacityBytes = 0) {
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes < 0) {
      throw new RangeError(
        `Cannot hold replica chunks: memoryCacheBytes ${capacityBytes} is not a non-negative integer`,
      );
    }
    this.capacityBytes = capacityBytes;
  }

  /** Bytes of chunks held now, pinned or not. */
  get sizeBytes(): number {
    return this.#bytes;
  }

  /** Bytes of pinned chunks held now. */
  get pinnedBytes(): number {
    return this.#bytes - this.#idleBytes;
  }

  /** The most bytes held at once since the last {@linkcode ChunkMemory.resetPeak}. */
  get peakBytes(): number {
    return this.#peakBytes;
  }

  /** Starts measuring the peak again from what is held now. */
  resetPeak(): void {
    this.#peakBytes = this.#bytes;
  }

  /** The number of distinct chunks held now. */
  get count(): number {
    return this.#held.size;
  }

  /** True when the chunk is held. */
  has(key: string): boolean {
    return this.#held.has(key);
  }

  /** The chunk's bytes when held, counting it as used now. */
  get(key: string): Uint8Array | undefined {
    const entry = this.#held.get(key);
    if (entry === undefined) return undefined;
    entry.used = true;
    return entry.bytes;
  }

  /** Pins a chunk, keeping `bytes` when it is not held yet; returns the bytes held. */
  pin(key: string, bytes: Uint8Array): Uint8Array;
  /** Pins a chunk when it is held; returns its bytes, or `undefined` when it is not held. */
  pin(key: string): Uint8Array | undefined;
  pin(key: string, bytes?: Uint8Array): Uint8Array | undefined {
    let entry = this.#held.get(key);
    if (entry === undefined) {
      if (bytes === undefined) return undefined;
      entry = { bytes, pins: 0, used: false };
      this.#held.set(key, entry);
      this.#bytes += bytes.length;
      // A pinned chunk pushes cached ones out, so memory stays within the cap wherever pins allow.
      this.#trim();
      this.#peakBytes = Math.max(this.#peakBytes, this.#bytes);
    } else if (entry.pins === 0) {
      this.#idle.delete(key);
      this.#idleBytes -= entry.bytes.length;
    }
    entry.pins++;
    return entry.bytes;
  }

  /** Unpins a chunk; the last unpin leaves it to the cap. */
  unpin(key: string): void {
    const entry = this.#held.get(key);
    if (entry === undefined || entry.pins === 0) return;
    if (--entry.pins > 0) return;
    this.#idle.set(key, entry);
    this.#idleBytes += entry.bytes.length;
    this.#trim();
  }

  /** Keeps a chunk unpinned (under the cap), unless it is held already. */
  keep(key: string, bytes: Uint8Array): void {
    if (this.#held.has(key) || this.#bytes - this.#idleBytes + bytes.length > this.capacityBytes) return;
    const entry = { bytes, pins: 0, used: false };
    this.#held.set(key, entry);
    this.#idle.set(key, entry);
    this.#bytes += bytes.length;
    this.#idleBytes += bytes.length;
    this.#trim();
    this.#peakBytes = Math.max(this.#peakBytes, this.#bytes);
  }

  /** Bytes that can be added without letting go of anything. */
  get room(): number {
    return Math.max(0, this.capacityBytes - this.#bytes);
  }

  /** Bytes the cap leaves beside what is pinned: what unpinned chunks may take, pushing older ones out. */
  get unpinnedRoom(): number {
    return Math.max(0, this.capacityBytes - this.pinnedBytes);
  }

  // Pinned chunks count against the cap too: a statement's working set pushes out cached chunks.
  #trim(): void {
    for (const [key, entry] of this.#idle) {
      if (this.#bytes <= this.capacityBytes) break;
      if (entry.used) {
        // Read since it was last passed: to the back of the queue, once.
        entry.used = false;
        this.#idle.delete(key);
        this.#idle.set(key, entry);
        continue;
      }
      this.#idle.delete(key);
      this.#held.delete(key);
      this.#idleBytes -= entry.bytes.length;
      this.#bytes -= entry.bytes.length;
    }
  }
}

/** Options of {@linkcode prepareImage}. */
export interface PrepareImageOptions {
  manifest: Manifest;
  /** Where chunks (and index chunks) come from; every source verifies what it hands out. */
  chunks: ChunkSource;
  memory: ChunkMemory;
  /** Read only the chunk list now, and the chunks when they are needed ({@linkcode loadChunks}).
   * @default {false} */
  lazy?: boolean | undefined;
  /** Index chunks already known by id (those of the image served now): unchanged ones are not fetched. */
  indexCache?: IndexCache | undefined;
  /** Fetches running at once. @default {8} */
  concurrency?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** What an image is called in messages. */
export function imageName(manifest: Manifest): string {
  return `snapshot ${manifest.sequence} of database "${manifest.identity.name}"`;
}

/**
 * Builds an image from a manifest: its chunk list read and checked; an eager image also fetches every chunk
 * memory lacks (verified by the chunk source) and pins them all. On failure nothing stays pinned.
 */
export async function prepareImage(options: PrepareImageOptions): Promise<SnapshotImage> {
  const { manifest, chunks, memory } = options;
  const what = imageName(manifest);
  const describe = describeOpenProblem(what);
  const list = await readChunkList(manifest, chunks, {
    doing: `open ${what}`,
    indexCache: options.indexCache,
    signal: options.signal,
    describe,
  });
  const generation = newGeneration();
  const keys = list.ids.map((id) => (idsEqual(id, ZERO_ID) ? "" : idToHex(id)));
  const chunk0 = servedHeader(manifest.chunk0, generation);
  let fetched = 0;
  if (!options.lazy) {
    const pinned: string[] = [];
    try {
      const read = await readImage(manifest, chunks, {
        doing: `open ${what}`,
        list,
        // A chunk memory holds is pinned where it is; the others are fetched and pinned as they come.
        have: (_id, index) => {
          const key = keys[index - 1]!;
          if (key === "" || memory.pin(key) === undefined) return undefined;
          pinned.push(key);
          return true;
        },
        sink: ({ index, bytes, from }) => {
          if (index === 0 || from === "zero") return;
          const key = keys[index - 1]!;
          memory.pin(key, bytes);
          pinned.push(key);
        },
        describe,
        concurrency: options.concurrency,
        signal: options.signal,
      });
      fetched = read.fetched;
    } catch (error) {
      for (const key of pinned) memory.unpin(key);
      throw error;
    }
  }
  return {
    manifest,
    generation,
    size: manifest.imageLength,
    chunkSize: manifest.chunkSize,
    chunk0,
    ids: list.ids,
    locations: list.locations,
    keys,
    lazy: options.lazy === true,
    preparedMs: Date.now(),
    chunksFetched: fetched,
  };
}

/** Options of {@linkcode loadChunks}. */
export interface LoadChunksOptions {
  chunks: ChunkSource;
  memory: ChunkMemory;
  /** Keeps each chunk read: pinned by the caller (it unpins them), else left unpinned under the cap. */
  pin?: ((key: string, bytes: Uint8Array) => void) | undefined;
  /** What the caller is doing, for messages. */
  doing: string;
  concurrency?: number | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Reads chunks `indexes` (from 1, ascending; none held and none all-zero) of a lazy `image` from the chunk
 * source into memory, neighbours in one pack with one ranged GET. Returns the number fetched.
 */
export async function loadChunks(
  image: SnapshotImage,
  indexes: readonly number[],
  options: LoadChunksOptions,
): Promise<number> {
  if (indexes.length === 0) return 0;
  const { memory, pin } = options;
  const read = await readImage(image.manifest, options.chunks, {
    doing: options.doing,
    list: { ids: image.ids as ChunkId[], locations: image.locations as (ChunkLocation | undefined)[] },
    indexes,
    sink: ({ index, bytes }) => {
      const key = image.keys[index - 1]!;
      if (key === "") return;
      if (pin) pin(key, bytes);
      else memory.keep(key, bytes);
    },
    describe: describeOpenProblem(imageName(image.manifest)),
    concurrency: options.concurrency,
    adapt: false,
    signal: options.signal,
  });
  return read.fetched;
}

/** How both engines word a chunk that does not fit the image they open; other problems keep the reader's
 * wording. */
export function describeOpenProblem(what: string): (problem: ReadProblem) => string | undefined {
  return (problem) => {
    if (problem.kind !== "length") return undefined;
    const { id, index, length, expected } = problem;
    return `Cannot open ${what}: chunk ${idToHex(id)} (chunk #${index}) is ${length} bytes, not ${expected}`;
  };
}

/** Lets go of an image's chunks: an eager image unpins every chunk it pinned; a lazy one pinned none. */
export function releaseImage(image: SnapshotImage, memory: ChunkMemory): void {
  if (image.lazy) return;
  for (const key of image.keys) if (key !== "") memory.unpin(key);
}
