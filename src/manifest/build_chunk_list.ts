/**
 * Building a manifest's chunk list (`docs/FORMAT.md`, "Manifests"), which writers do; readers expand it
 * with `chunk_list.ts`. Apart from it because naming index chunks hashes synchronously with `node:crypto`,
 * which the browser entry point, a reader, has not.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { checkId, ID_LENGTH } from "../chunk/ids.ts";
import type { ChunkId, ChunkList } from "./types.ts";

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

/**
 * The chunk list for `ids` (the ids of chunks 1 .. n-1): inline when there are at most `inlineMax`, else
 * index chunks of `fanout` ids each (the last holds the rest), named by their SHA-256. Throws `TypeError`
 * for an id that is not 32 bytes and `RangeError` for bad options.
 *
 * @example A large list is indexed
 * ```ts
 * import { buildChunkList } from "./build_chunk_list.ts";
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
