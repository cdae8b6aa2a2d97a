/**
 * Where a snapshot's chunks live in a store, as tests need it: the keys of the objects a manifest
 * references (packs, chunk objects, index chunks), and a way to damage one stored chunk in place, whether
 * it is its own object or inside a pack.
 *
 * @module
 */

import { idToHex, ZERO_ID } from "../../src/chunk/ids.ts";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { chunkListIndexIds, manifestChunkList } from "../../src/manifest/chunk_list.ts";
import { chunkKey, packKey } from "../../src/manifest/keys.ts";
import type { ChunkId, Manifest } from "../../src/manifest/types.ts";
import type { BlobStore } from "../../src/store/types.ts";

/** The keys of every object `manifest` references: packs and chunk objects of its data, its index chunks. */
export async function referencedKeys(store: BlobStore, manifest: Manifest): Promise<Set<string>> {
  const { ids, locations } = await manifestChunkList(manifest, new StoreChunkSource(store), {
    doing: "test",
  });
  const zero = idToHex(ZERO_ID);
  const keys = new Set<string>();
  ids.forEach((id, i) => {
    const where = locations[i];
    if (where) keys.add(packKey(where.pack));
    else if (idToHex(id) !== zero) keys.add(chunkKey(id));
  });
  for (const id of chunkListIndexIds(manifest.chunks)) keys.add(chunkKey(id));
  return keys;
}

/** Where one stored data chunk's object bytes are: the key, and the byte range inside that object. */
export interface StoredChunk {
  /** Its position in the image (1 .. n-1). */
  index: number;
  id: ChunkId;
  key: string;
  offset: number;
  length: number;
}

/** Every non-zero data chunk of `manifest`, with where its bytes are stored, in image order. */
export async function storedChunks(store: BlobStore, manifest: Manifest): Promise<StoredChunk[]> {
  const { ids, locations } = await manifestChunkList(manifest, new StoreChunkSource(store), {
    doing: "test",
  });
  const out: StoredChunk[] = [];
  const zero = idToHex(ZERO_ID);
  ids.forEach((id, i) => {
    if (idToHex(id) === zero) return;
    const where = locations[i];
    out.push(
      where
        ? { index: i + 1, id, key: packKey(where.pack), offset: where.offset, length: where.length }
        : { index: i + 1, id, key: chunkKey(id), offset: 0, length: -1 },
    );
  });
  return out;
}

/**
 * Flips the last byte of `chunk`'s stored bytes (its payload) in `store`, leaving every other byte of the
 * object as it was; returns the key changed.
 */
export async function damageStoredChunk(store: BlobStore, chunk: StoredChunk): Promise<string> {
  const got = await store.get(chunk.key);
  if (got.status !== "ok") throw new Error(`${chunk.key} is not in ${store.description}`);
  const bytes = got.body.slice();
  const last = chunk.length < 0 ? bytes.length - 1 : chunk.offset + chunk.length - 1;
  bytes[last] = bytes[last]! ^ 0xff;
  await store.put(chunk.key, bytes);
  return chunk.key;
}
