/**
 * Building a manifest's chunk list (`docs/FORMAT.md`, "Manifests"), which writers do; readers expand it
 * with `chunk_list.ts`. Apart from it because naming index chunks hashes synchronously with `node:crypto`,
 * which the browser entry point, a reader, has not.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { checkId, ID_LENGTH } from "../chunk/ids.ts";
import { encodeLocatedList } from "./located_list.ts";
import type { ChunkId, ChunkList, ChunkLocation } from "./types.ts";

/** Options for {@linkcode buildChunkList}. */
export interface BuildChunkListOptions {
  /** The most ids listed inline; more are split into index chunks. @default {512} */
  inlineMax?: number;
  /** Ids per index chunk: a power of two from 64 to 32768. @default {512} */
  fanout?: number;
  /** The manifest format the list is for: 2 lists every chunk with its location. @default {2} */
  version?: 1 | 2;
  /** Format 2: where each chunk lives, in the order of the ids; `undefined` for its own object.
   * @default {every chunk is its own object} */
  locations?: readonly (ChunkLocation | undefined)[] | undefined;
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
 * const { list, indexChunks } = buildChunkList(ids, { version: 1 });
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
  const version = options.version ?? 2;
  const { locations } = options;
  if (version === 1 && locations !== undefined) {
    throw new RangeError("Cannot build a chunk list: format 1 has no locations");
  }
  if (locations !== undefined && locations.length !== ids.length) {
    throw new RangeError(`Cannot build a chunk list: ${locations.length} locations for ${ids.length} ids`);
  }
  ids.forEach((id, i) => checkId(id, `id of chunk ${i + 1}`));
  if (ids.length <= inlineMax) {
    if (version === 1) return { list: { kind: "inline", ids: [...ids] }, indexChunks: [] };
    const where = locations
      ? [...locations]
      : new Array<ChunkLocation | undefined>(ids.length).fill(undefined);
    return { list: { kind: "inline", ids: [...ids], locations: where }, indexChunks: [] };
  }
  const indexChunks: Uint8Array[] = [];
  const indexIds: ChunkId[] = [];
  for (let first = 0; first < ids.length; first += fanout) {
    const group = ids.slice(first, first + fanout);
    let bytes: Uint8Array;
    if (version === 2) bytes = encodeLocatedList(group, locations?.slice(first, first + fanout));
    else {
      bytes = new Uint8Array(group.length * ID_LENGTH);
      group.forEach((id, i) => bytes.set(id, i * ID_LENGTH));
    }
    indexChunks.push(bytes);
    indexIds.push(new Uint8Array(createHash("sha256").update(bytes).digest()));
  }
  return { list: { kind: "indexed", count: ids.length, fanout, indexIds }, indexChunks };
}
