/**
 * A manifest's list of chunk ids (`docs/FORMAT.md`, "Manifests"): inline for small images, else split into
 * index chunks so that a small change to a large image rewrites one index chunk, not the whole list.
 *
 * @module
 */

import { ID_LENGTH, idsEqual, idToHex, ZERO_ID } from "../chunk/ids.ts";
import { TesseraError } from "../errors.ts";
import type { ChunkSource } from "../chunk/source.ts";
import { forEachLimit } from "../pool.ts";
import { decodeLocatedList, type LocatedList } from "./located_list.ts";
import type { ChunkId, ChunkList, ChunkLocation, Manifest } from "./types.ts";

export type { LocatedList };

/** Index chunks read at once: a 1 GiB image at 64 KiB chunks has 33 (about 22 KiB each), so a cold open of up
 * to 2 GiB reads them all in one round trip. */
const LOAD_CONCURRENCY = 64;

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
 * The ids of chunks 1 .. n-1 that `list` names, and where each lives (format 2; all `undefined` in format
 * 1, where every chunk is its own object), loading index chunk `k` (0-based) through
 * `loadIndexChunk(id, k)`, which returns its raw, verified bytes. Index chunks named by the all-zero id are
 * zero bytes and are not loaded (format 1 only). Throws `TesseraError` `CORRUPT_MANIFEST` when the list is
 * inconsistent or an index chunk does not hold the entries its place in the list gives it.
 *
 * @example
 * ```ts
 * import { buildChunkList } from "./build_chunk_list.ts";
 * import { expandChunkList } from "./chunk_list.ts";
 * const ids = Array.from({ length: 600 }, (_, i) => new Uint8Array(32).fill(i % 256));
 * const { list, indexChunks } = buildChunkList(ids);
 * const again = await expandChunkList(list, async (_id, k) => indexChunks[k]!, 2);
 * console.log(again.ids.length); // 600
 * ```
 */
export async function expandChunkList(
  list: ChunkList,
  loadIndexChunk: (id: ChunkId, k: number) => Promise<Uint8Array>,
  version: 1 | 2 = 1,
): Promise<LocatedList> {
  if (list.kind === "inline") {
    const locations = list.locations ?? new Array<ChunkLocation | undefined>(list.ids.length).fill(undefined);
    return { ids: [...list.ids], locations: [...locations] };
  }
  const { count, fanout, indexIds } = list;
  if (indexIds.length !== Math.ceil(count / fanout)) {
    throw new TesseraError(
      "CORRUPT_MANIFEST",
      `Cannot expand a chunk list: ${indexIds.length} index chunks cannot hold ${count} ids at ${fanout} each`,
    );
  }
  const ids: ChunkId[] = new Array(count);
  const locations: (ChunkLocation | undefined)[] = new Array(count).fill(undefined);
  const load = async (k: number) => {
    const id = indexIds[k] as ChunkId;
    const held = Math.min(fanout, count - k * fanout);
    if (version === 1 && idsEqual(id, ZERO_ID)) {
      ids.fill(ZERO_ID, k * fanout, k * fanout + held);
      return;
    }
    const bytes = await loadIndexChunk(id, k);
    const bad = (reason: string): never => {
      throw new TesseraError(
        "CORRUPT_MANIFEST",
        `Cannot expand a chunk list: index chunk ${k} (${idToHex(id)}) ${reason}`,
      );
    };
    if (!(bytes instanceof Uint8Array)) bad("is not bytes");
    if (version === 2) {
      const located = decodeLocatedList(bytes, held, (reason) => bad(`is not a located list: ${reason}`));
      for (let i = 0; i < held; i++) {
        ids[k * fanout + i] = located.ids[i]!;
        locations[k * fanout + i] = located.locations[i];
      }
      return;
    }
    if (bytes.length !== held * ID_LENGTH) bad(`is ${bytes.length} bytes, not ${held * ID_LENGTH}`);
    for (let i = 0; i < held; i++) ids[k * fanout + i] = bytes.subarray(i * ID_LENGTH, (i + 1) * ID_LENGTH);
  };
  await forEachLimit(indexIds.keys(), load, { concurrency: LOAD_CONCURRENCY });
  return { ids, locations };
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
  return (await manifestChunkList(manifest, indexChunks, options)).ids;
}

/** Like {@linkcode manifestChunkIds}, with where each chunk lives. */
export async function manifestChunkList(
  manifest: Manifest,
  indexChunks: ChunkSource,
  options: ManifestChunkIdsOptions,
): Promise<LocatedList> {
  const { doing, indexCache, signal } = options;
  const list = await expandChunkList(manifest.chunks, async (id, k) => {
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
  }, manifest.version ?? 1);
  const { ids } = list;
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
  return list;
}
