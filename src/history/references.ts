/**
 * Which objects the manifests in a store reference: the pack each data chunk lives in (format 2), or its
 * own chunk object (format 1, and chunks a format 2 manifest lists as their own object), and the index
 * chunks its list is split into. What `tessera gc` must keep and `tessera touch` renews.
 *
 * @module
 */

import { idsEqual, ZERO_ID } from "../chunk/ids.ts";
import { StoreChunkSource } from "../chunk/source.ts";
import { TesseraError } from "../errors.ts";
import { chunkListIndexIds, type IndexCache, manifestChunkList } from "../manifest/chunk_list.ts";
import { listManifests } from "../manifest/catalog.ts";
import { decodeManifest } from "../manifest/codec.ts";
import { chunkKey, packKey } from "../manifest/keys.ts";
import type { Manifest } from "../manifest/types.ts";
import { forEachLimit } from "../pool.ts";
import type { BlobStore } from "../store/types.ts";

/** How many manifests are read at once. */
const READ_CONCURRENCY = 8;

/** How many times the manifests are listed again when some vanished while they were read. */
const MAX_LISTINGS = 20;

/** Options of the functions of this module. */
export interface ReferenceOptions {
  signal?: AbortSignal | undefined;
  /** Index chunks already read, by hex id; consecutive manifests share most of them. */
  indexCache?: IndexCache | undefined;
}

/**
 * Adds to `into` the keys of the objects `manifest` references: the packs and chunk objects its data chunks
 * live in (the all-zero id is never stored and is left out) and its index chunks, which are read from
 * `store` to list the data chunks. Throws `TesseraError` `NOT_FOUND` when an index chunk is missing.
 *
 * @example
 * ```ts
 * import { addManifestReferences } from "./references.ts";
 * import { MemoryStore } from "../store/memory.ts";
 * const manifest = {
 *   identity: { name: "app", hostname: "", sourcePath: "" }, sequence: 1, createdMs: 0, sourceMtimeMs: 0,
 *   pageSize: 4096, imageLength: 4096, chunkSize: 4096, imageSha256: new Uint8Array(32),
 *   chunk0: new Uint8Array(4096), chunks: { kind: "inline" as const, ids: [] },
 * };
 * const keys = new Set<string>();
 * await addManifestReferences(new MemoryStore(), manifest, keys, { doing: "read app" });
 * console.log(keys.size); // 0: chunk 0 lives in the manifest
 * ```
 */
export async function addManifestReferences(
  store: BlobStore,
  manifest: Manifest,
  into: Set<string>,
  options: ReferenceOptions & { doing: string },
): Promise<void> {
  const { ids, locations } = await manifestChunkList(manifest, new StoreChunkSource(store), {
    doing: options.doing,
    indexCache: options.indexCache,
    signal: options.signal,
  });
  ids.forEach((id, i) => {
    const where = locations[i];
    if (where) into.add(packKey(where.pack));
    else if (!idsEqual(id, ZERO_ID)) into.add(chunkKey(id));
  });
  for (const id of chunkListIndexIds(manifest.chunks)) if (!idsEqual(id, ZERO_ID)) into.add(chunkKey(id));
}

/** What {@linkcode referencedChunks} found. */
export interface References {
  /** Keys of every chunk object and pack some manifest references. */
  keys: Set<string>;
  /** Manifests read. */
  manifests: number;
  /** Databases they belong to. */
  databases: number;
}

/**
 * The chunks every manifest of every database in `store` references. A manifest deleted while it is read
 * (a prune running) makes the listing start again: prune deletes only manifests older than a pointer, so
 * the newer manifest that pointer names, which may rely on the same chunks, is then listed too. Throws
 * `TesseraError` when a manifest or an index chunk cannot be read: without it, no chunk can be called
 * unreferenced.
 *
 * @example
 * ```ts
 * import { referencedChunks } from "./references.ts";
 * import { MemoryStore } from "../store/memory.ts";
 * console.log((await referencedChunks(new MemoryStore())).keys.size); // 0
 * ```
 */
export async function referencedChunks(
  store: BlobStore,
  options: ReferenceOptions = {},
): Promise<References> {
  const { signal } = options;
  const indexCache = options.indexCache ?? boundedIndexCache();
  const keys = new Set<string>();
  const read = new Set<string>();
  const databases = new Set<string>();
  for (let listing = 0; listing < MAX_LISTINGS; listing++) {
    const listed: string[] = [];
    for await (const entry of listManifests(store, { signal })) {
      if (read.has(entry.key)) continue;
      listed.push(entry.key);
      databases.add(entry.name);
    }
    let vanished = false;
    await forEachLimit(listed, async (key) => {
      const got = await store.get(key, { signal });
      if (got.status !== "ok") {
        vanished = true;
        return;
      }
      const doing = `collect references of ${key} in ${store.description}`;
      let manifest: Manifest;
      try {
        manifest = await decodeManifest(got.body, { what: `${store.description} ${key}` });
      } catch (error) {
        throw new TesseraError(
          (error as TesseraError).code ?? "CORRUPT_MANIFEST",
          `Cannot ${doing}: ${(error as Error).message}; no chunk can be called unreferenced while a ` +
            "manifest cannot be read: restore it from another copy, or delete it if it is not needed",
          { cause: error },
        );
      }
      await addManifestReferences(store, manifest, keys, { doing, indexCache, signal });
      read.add(key);
    }, { concurrency: READ_CONCURRENCY, signal });
    if (!vanished) return { keys, manifests: read.size, databases: databases.size };
  }
  throw new TesseraError(
    "CONFLICT",
    `Cannot list the manifests in ${store.description}: they kept changing over ${MAX_LISTINGS} listings`,
  );
}

/** An index cache that holds at most `capacityBytes` (default 64 MiB), forgetting the oldest first. */
export function boundedIndexCache(capacityBytes: number = 64 * 1024 * 1024): IndexCache {
  const held = new Map<string, Uint8Array>();
  let bytes = 0;
  return {
    get: (hex) => held.get(hex),
    set: (hex, value) => {
      if (held.has(hex) || value.length > capacityBytes) return;
      held.set(hex, value);
      bytes += value.length;
      for (const [oldest, old] of held) {
        if (bytes <= capacityBytes) break;
        held.delete(oldest);
        bytes -= old.length;
      }
    },
  };
}
