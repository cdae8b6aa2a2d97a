/**
 * Snapshot images held in memory for the wasm engine: a manifest's chunks, verified, resident, and shared by
 * id between the generations a replica holds, so a refresh costs only the chunks that changed.
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
import type { ChunkId, Manifest } from "../manifest/types.ts";
import { readImage, type ReadImageResult, type ReadProblem } from "../restore/read_image.ts";

/** One snapshot, ready to serve: every byte is in memory and verified. */
export interface SnapshotImage {
  readonly manifest: Manifest;
  /** Unique per process: written into the served header as the change counter. */
  readonly generation: number;
  readonly size: number;
  readonly chunkSize: number;
  /** The bytes of chunk i, or `undefined` for an all-zero chunk. Chunk 0 is the rewritten header copy. */
  readonly chunks: ReadonlyArray<Uint8Array | undefined>;
  /** The ids of chunks 1 .. n-1, as the manifest lists them. */
  readonly ids: readonly ChunkId[];
  /** When this process finished preparing the image, in milliseconds since the epoch. */
  readonly preparedMs: number;
  /** Chunks this image had to fetch (the rest were shared with images already held). */
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

/**
 * The chunks held by the images of one replica, by id, counted by the images that use them: a chunk two
 * images share is held once, and leaves memory with the last image that uses it.
 */
export class ChunkPool {
  readonly #held = new Map<string, { bytes: Uint8Array; refs: number }>();
  #bytes = 0;

  /** The bytes of chunks held now. */
  get sizeBytes(): number {
    return this.#bytes;
  }

  /** The number of distinct chunks held now. */
  get count(): number {
    return this.#held.size;
  }

  /** The chunk's bytes when an image holds it. */
  peek(hex: string): Uint8Array | undefined {
    return this.#held.get(hex)?.bytes;
  }

  /** Counts one more user of a chunk, keeping `bytes` when it is not held yet. */
  retain(hex: string, bytes: Uint8Array): Uint8Array {
    const entry = this.#held.get(hex);
    if (entry) {
      entry.refs++;
      return entry.bytes;
    }
    this.#held.set(hex, { bytes, refs: 1 });
    this.#bytes += bytes.length;
    return bytes;
  }

  /** Counts one user fewer; the last one lets the chunk go. */
  release(hex: string): void {
    const entry = this.#held.get(hex);
    if (!entry) return;
    if (--entry.refs <= 0) {
      this.#held.delete(hex);
      this.#bytes -= entry.bytes.length;
    }
  }
}

/** Options of {@linkcode prepareImage}. */
export interface PrepareImageOptions {
  manifest: Manifest;
  /** Where chunks (and index chunks) come from; every source verifies what it hands out. */
  chunks: ChunkSource;
  pool: ChunkPool;
  /** Index chunks already known by id (those of the image served now): unchanged ones are not fetched. */
  indexCache?: IndexCache | undefined;
  /** Fetches running at once. @default {8} */
  concurrency?: number | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Builds an image from a manifest: chunks the pool holds are shared, the others fetched (verified by the
 * chunk source). On failure nothing stays retained.
 */
export async function prepareImage(options: PrepareImageOptions): Promise<SnapshotImage> {
  const { manifest, chunks, pool } = options;
  const what = `snapshot ${manifest.sequence} of database "${manifest.identity.name}"`;
  const generation = newGeneration();
  const out: Array<Uint8Array | undefined> = [];
  const retained: string[] = [];
  let read: ReadImageResult;
  try {
    read = await readImage(manifest, chunks, {
      doing: `open ${what}`,
      indexCache: options.indexCache,
      // A chunk another image holds, or an earlier entry of this one, is shared.
      have: (id) => idsEqual(id, ZERO_ID) ? undefined : pool.peek(idToHex(id)),
      sink: ({ index, id, bytes, from }) => {
        if (index === 0) out[0] = servedHeader(bytes, generation);
        else if (from !== "zero") {
          const hex = idToHex(id!);
          out[index] = pool.retain(hex, bytes);
          retained.push(hex);
        }
      },
      describe: describeOpenProblem(what),
      concurrency: options.concurrency,
      signal: options.signal,
    });
  } catch (error) {
    for (const hex of retained) pool.release(hex);
    throw error;
  }
  out.length = read.ids.length + (manifest.imageLength > 0 ? 1 : 0);
  return {
    manifest,
    generation,
    size: manifest.imageLength,
    chunkSize: manifest.chunkSize,
    chunks: out,
    ids: read.ids,
    preparedMs: Date.now(),
    chunksFetched: read.fetched,
  };
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

/** Lets go of an image's chunks in the pool. */
export function releaseImage(image: SnapshotImage, pool: ChunkPool): void {
  for (const id of image.ids) {
    if (!idsEqual(id, ZERO_ID)) pool.release(idToHex(id));
  }
}
