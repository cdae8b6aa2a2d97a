/**
 * A manifest's list of chunk ids (`docs/FORMAT.md`, "Manifests"): inline for small images, else split into
 * index chunks so that a small change to a large image rewrites one index chunk, not the whole list.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { checkId, ID_LENGTH, idsEqual, idToHex, ZERO_ID } from "../chunk/ids.ts";
import { TesseraError } from "../errors.ts";
import type { ChunkSource } from "../chunk/source.ts";
import type { ChunkId, ChunkList, Manifest } from "./types.ts";

/** Options for {@linkcode buildChunkList}. */
export interface BuildChunkListOptions {
  /** The most ids listed inline; more are split into index chunks. @default {512} */
  inlineMax?: number;
  /** Ids per index chunk: a power of two from 64 to 32768. @default {512} */
  fanout?: number;
}

/** A chunk list and the index chunks it names. */
export interface BuiltChunkList {
  list: ChunkList;
  /**
   * The raw bytes of each index chunk, in the order of `list.indexIds` (empty for an inline list). Upload
   * each as a chunk object under its id.
   */
  indexChunks: Uint8Array[];
}

/** How many index chunks {@linkcode expandChunkList} loads at once. */
const LOAD_CONCURRENCY = 8;

/**
 * The chunk list for `ids` (the ids of chunks 1 .. n-1): inline when there are at most `inlineMax`, else
 * index chunks of `fanout` ids each (the last holds the rest), named by their SHA-256. Throws `TypeError`
 * for an id that is not 32 bytes and `RangeError` for bad options.
 *
 * @example A large list is indexed
 * ```ts
 * import { buildChunkList } from "./chunk_list.ts";
 * const ids = Array.from({ length: 1000 }, () => new Uint8Array(32));
 * const { list, indexChunks } = buildChunkList(ids);
 * console.log(list.kind, indexChunks.map((c) => c.length)); // "indexed" [16384, 15616]
 * ```
 */
export function buildChunkList(ids: readonly ChunkId[], options: BuildChunkListOptions = {}): BuiltChunkList {
  const inlineMax = options.inlineMax ?? 512;
  const fanout = options.fanout ?? 512;
  if (!Number.isSafeInteger(inlineMax) || inlineMax < 0) {
    throw new RangeError(`Cannot build a chunk list: inlineMax ${inlineMax} is not a non-negative integer`);
  }
  if (!Number.isInteger(fanout) || fanout < 64 || fanout > 32768 || (fanout & (fanout - 1)) !== 0) {
    throw new RangeError(
      `Cannot build a chunk list: fanout ${fanout} is not a power of two from 64 to 32768`,
    );
  }
  ids.forEach((id, i) => checkId(id, `id of chunk ${i + 1}`));
  if (ids.length <= inlineMax) return { list: { kind: "inline", ids: [...ids] }, indexChunks: [] };
  const indexChunks: Uint8Array[] = [];
  const indexIds: ChunkId[] = [];
  for (let first = 0; first < ids.length; first += fanout) {
    const group = ids.slice(first, first + fanout);
    const bytes = new Uint8Array(group.length * ID_LENGTH);
    group.forEach((id, i) => bytes.set(id, i * ID_LENGTH));
    indexChunks.push(bytes);
    indexIds.push(new Uint8Array(createHash("sha256").update(bytes).digest()));
  }
  return { list: { kind: "indexed", count: ids.length, fanout, indexIds }, indexChunks };
}

/**
 * The ids of the index chunks `list` names, in order (none for an inline list). An all-zero id, which this
 * module never writes but a reader accepts, stands for an index chunk of zero bytes that is not stored.
 *
 * @example
 * ```ts
 * import { chunkListIndexIds } from "./chunk_list.ts";
 * console.log(chunkListIndexIds({ kind: "inline", ids: [] }).length); // 0
 * ```
 */
export function chunkListIndexIds(list: ChunkList): ChunkId[] {
  return list.kind === "indexed" ? [...list.indexIds] : [];
}

/**
 * The ids of chunks 1 .. n-1 that `list` names, loading index chunk `k` (0-based) through
 * `loadIndexChunk(id, k)`, which returns its raw, verified bytes. Index chunks named by the all-zero id are
 * zero bytes and are not loaded. Throws `TesseraError` `CORRUPT_MANIFEST` when the list is inconsistent or
 * an index chunk is not `fanout * 32` bytes (the last: the rest).
 *
 * @example
 * ```ts
 * import { buildChunkList, expandChunkList } from "./chunk_list.ts";
 * const ids = Array.from({ length: 600 }, (_, i) => new Uint8Array(32).fill(i % 256));
 * const { list, indexChunks } = buildChunkList(ids);
 * const again = await expandChunkList(list, async (_id, k) => indexChunks[k]!);
 * console.log(again.length); // 600
 * ```
 */
export async function expandChunkList(
  list: ChunkList,
  loadIndexChunk: (id: ChunkId, k: number) => Promise<Uint8Array>,
): Promise<ChunkId[]> {
  if (list.kind === "inline") return [...list.ids];
  const { count, fanout, indexIds } = list;
  if (indexIds.length !== Math.ceil(count / fanout)) {
    throw new TesseraError(
      "CORRUPT_MANIFEST",
      `Cannot expand a chunk list: ${indexIds.length} index chunks cannot hold ${count} ids at ${fanout} each`,
    );
  }
  const ids: ChunkId[] = new Array(count);
  const load = async (k: number) => {
    const id = indexIds[k] as ChunkId;
    const held = Math.min(fanout, count - k * fanout);
    if (idsEqual(id, ZERO_ID)) {
      ids.fill(ZERO_ID, k * fanout, k * fanout + held);
      return;
    }
    const bytes = await loadIndexChunk(id, k);
    if (!(bytes instanceof Uint8Array) || bytes.length !== held * ID_LENGTH) {
      const length = bytes instanceof Uint8Array ? bytes.length : "not";
      throw new TesseraError(
        "CORRUPT_MANIFEST",
        `Cannot expand a chunk list: index chunk ${k} (${idToHex(id)}) is ${length} bytes, not ${
          held * ID_LENGTH
        }`,
      );
    }
    for (let i = 0; i < held; i++) ids[k * fanout + i] = bytes.subarray(i * ID_LENGTH, (i + 1) * ID_LENGTH);
  };
  let next = 0;
  const worker = async () => {
    try {
      while (next < indexIds.length) await load(next++);
    } catch (error) {
      next = indexIds.length; // stops the other workers after their current load
      throw error;
    }
  };
  await Promise.all(Array.from({ length: Math.min(LOAD_CONCURRENCY, indexIds.length) }, worker));
  return ids;
}

/** Index chunks by hex id: looked up before fetching, and told of every index chunk a manifest uses. */
export interface IndexCache {
  get(hex: string): Uint8Array | undefined;
  set(hex: string, bytes: Uint8Array): void;
}

/** Options of {@linkcode manifestChunkIds}. */
export interface ManifestChunkIdsOptions {
  /** What the caller is doing, for messages: "restore app seq 3", "open snapshot 3 of database \"app\"". */
  doing: string;
  indexCache?: IndexCache | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * The ids of a manifest's chunks 1 .. n-1, its index chunks read through `indexCache` first, then
 * `indexChunks`; checked against the image length the manifest states.
 *
 * @example
 * ```ts
 * import { manifestChunkIds } from "./chunk_list.ts";
 * import { MemoryChunkCache } from "../chunk/source.ts";
 * const manifest = {
 *   identity: { name: "app", hostname: "", sourcePath: "" }, sequence: 1, createdMs: 0, sourceMtimeMs: 0,
 *   pageSize: 4096, imageLength: 4096, chunkSize: 4096, imageSha256: new Uint8Array(32),
 *   chunk0: new Uint8Array(4096), chunks: { kind: "inline" as const, ids: [] },
 * };
 * console.log(await manifestChunkIds(manifest, new MemoryChunkCache({ capacityBytes: 0 }), { doing: "read app" })); // []
 * ```
 */
export async function manifestChunkIds(
  manifest: Manifest,
  indexChunks: ChunkSource,
  options: ManifestChunkIdsOptions,
): Promise<ChunkId[]> {
  const { doing, indexCache, signal } = options;
  const ids = await expandChunkList(manifest.chunks, async (id, k) => {
    const hex = idToHex(id);
    const bytes = indexCache?.get(hex) ?? await indexChunks.get(id, { signal });
    if (bytes === undefined) {
      throw new TesseraError(
        "NOT_FOUND",
        `Cannot ${doing}: index chunk ${hex} (index #${k}) is missing from ${indexChunks.description}`,
      );
    }
    indexCache?.set(hex, bytes);
    return bytes;
  });
  const total = Math.ceil(manifest.imageLength / manifest.chunkSize);
  if (
    ids.length !== Math.max(0, total - 1) ||
    manifest.chunk0.length !== Math.min(manifest.chunkSize, manifest.imageLength)
  ) {
    throw new TesseraError(
      "CORRUPT_MANIFEST",
      `Cannot ${doing}: the manifest lists ${ids.length + 1} chunks for ${manifest.imageLength} bytes`,
    );
  }
  return ids;
}
