/**
 * The order a reader fetches chunks in: its caches first, then the store that holds the manifest, then
 * every other store.
 *
 * @module
 */

import type { BlobStore } from "../store/types.ts";
import {
  type ChunkCache,
  type ChunkLocator,
  type ChunkSource,
  LayeredChunkSource,
  StoreChunkSource,
} from "./source.ts";

/** Options of {@linkcode readThrough}. */
export interface ReadThroughOptions {
  /** Caches tried before any store, in order; a chunk found further on is put into each. @default {[]} */
  caches?: readonly ChunkCache[] | undefined;
  /** More stores tried after `primary`, in order (`primary` itself is skipped here). @default {[]} */
  stores?: readonly BlobStore[] | undefined;
  /** How one of those stores finds the chunks of its own snapshot (its packs are not the primary's).
   * @default {each store is asked at the primary's places only} */
  locate?: ((store: BlobStore) => ChunkLocator) | undefined;
}

/**
 * The chunk source a reader goes through: `caches`, then `primary`, then every other store in `stores`.
 * With no cache and no other store, the store's own source.
 *
 * @example A memory cache in front of two stores
 * ```ts
 * import { readThrough } from "./layers.ts";
 * import { MemoryChunkCache } from "./source.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * const main = new MemoryStore();
 * const chunks = readThrough(main, {
 *   caches: [new MemoryChunkCache({ capacityBytes: 1 << 20 })],
 *   stores: [main, new MemoryStore()],
 * });
 * console.log(chunks.description);
 * ```
 */
export function readThrough(primary: BlobStore, options: ReadThroughOptions = {}): ChunkSource {
  const layers: ChunkSource[] = [...(options.caches ?? [])];
  layers.push(new StoreChunkSource(primary));
  for (const other of options.stores ?? []) {
    if (other !== primary) layers.push(new StoreChunkSource(other, { locate: options.locate?.(other) }));
  }
  return layers.length === 1 ? layers[0] as ChunkSource : new LayeredChunkSource(layers);
}
