/**
 * Where a store keeps a database's chunks, as its own newest snapshot says: what a store read through after
 * another needs, since every store a writer publishes to holds packs of its own (`chunk/source.ts`,
 * `ChunkLocator`).
 *
 * @module
 */

import { idToHex } from "../chunk/ids.ts";
import type { ChunkLocation } from "../chunk/pack.ts";
import { type ChunkLocator, StoreChunkSource } from "../chunk/source.ts";
import { TesseraError } from "../errors.ts";
import type { BlobStore } from "../store/types.ts";
import { loadLatest } from "./catalog.ts";
import { manifestChunkList } from "./chunk_list.ts";
import type { Manifest } from "./types.ts";

/**
 * Where the data chunks of `manifest` live in `store`: hex id → place (`undefined`: a chunk kept as its own
 * object, or a zero chunk), its index chunks read from `store`.
 */
export async function chunkPlaces(
  store: BlobStore,
  manifest: Manifest,
  options: { doing: string; signal?: AbortSignal | undefined },
): Promise<Map<string, ChunkLocation | undefined>> {
  const { ids, locations } = await manifestChunkList(manifest, new StoreChunkSource(store), options);
  const places = new Map<string, ChunkLocation | undefined>();
  ids.forEach((id, i) => places.set(idToHex(id), locations[i]));
  return places;
}

/** How long a store's places are trusted before its newest snapshot is read again. */
const FRESH_MS = 60_000;

/**
 * A {@linkcode ChunkLocator} for `store`: the places of the chunks of its newest snapshot of a database,
 * read once a minute at most (a database it has no snapshot of has no places).
 *
 * @example
 * ```ts
 * import { storeLocator } from "./locate.ts";
 * import { MemoryStore } from "../store/memory.ts";
 * console.log((await storeLocator(new MemoryStore())("app")).size); // 0
 * ```
 */
export function storeLocator(store: BlobStore): ChunkLocator {
  const known = new Map<string, { at: number; places: Promise<Map<string, ChunkLocation | undefined>> }>();
  const load = async (database: string, signal?: AbortSignal) => {
    let manifest;
    try {
      manifest = (await loadLatest(store, database, { signal })).manifest;
    } catch (error) {
      if (error instanceof TesseraError && error.code === "NOT_FOUND") return new Map();
      throw error;
    }
    return await chunkPlaces(store, manifest, {
      doing: `find the chunks of "${database}" in ${store.description}`,
      signal,
    });
  };
  return (database, signal) => {
    const held = known.get(database);
    if (held && performance.now() - held.at < FRESH_MS) return held.places;
    const places = load(database, signal);
    known.set(database, { at: performance.now(), places });
    places.catch(() => known.delete(database));
    return places;
  };
}
