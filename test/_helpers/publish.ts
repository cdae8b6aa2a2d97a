/**
 * Publishing arbitrary images (not SQLite files) to a store the way a writer does (chunks, then the
 * manifest, then the pointer), so read-side tests need no database: the data chunks are put here, the
 * manifest is built by the write pipeline's own `buildManifest`. Unlike a writer, it replaces whatever is
 * there, so tests can build damaged and conflicting states.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { encodeChunk } from "../../src/chunk/codec.ts";
import { chunkIds, idsEqual, idToHex, isZeroChunk, splitImage, ZERO_ID } from "../../src/chunk/ids.ts";
import { buildPack, type ChunkLocation } from "../../src/chunk/pack.ts";
import { encodePointer } from "../../src/manifest/codec.ts";
import { chunkKey, manifestKey, packKey, pointerKey } from "../../src/manifest/keys.ts";
import { buildManifest } from "../../src/write/publish.ts";
import type { ChunkId, Manifest } from "../../src/manifest/types.ts";
import type { BlobStore } from "../../src/store/types.ts";

/** Options of {@linkcode publishImage}. */
export interface PublishOptions {
  /** The database's name in the store. */
  name: string;
  sequence: number;
  chunkSize: number;
  /** @default {Math.min(4096, chunkSize)} */
  pageSize?: number;
  /** Publish the chunks and the manifest, but leave the pointer as it is.
   * @default {false} */
  skipPointer?: boolean;
  /** Put the data chunks into packs of about this many bytes, in image order, as writers do; without it
   * each is its own chunk object. */
  packBytes?: number | undefined;
}

/** What {@linkcode publishImage} published. */
export interface Published {
  manifest: Manifest;
  manifestBytes: Uint8Array;
  /** The ids of every chunk of the image, chunk 0 included. */
  ids: ChunkId[];
  /** The ids of the index chunks (none for an inline list). */
  indexIds: ChunkId[];
  /** Where chunks 1 .. n-1 live (with `packBytes`), in order; `undefined` for their own object. */
  locations: (ChunkLocation | undefined)[];
  /** The keys of the packs written, in order (with `packBytes`). */
  packKeys: string[];
}

/**
 * Publishes `image` as snapshot `sequence` of database `name`: non-zero chunks 1 .. n-1 and the index
 * chunks as chunk objects, then the manifest, then the pointer.
 *
 * @example Publish a small image
 * ```ts
 * import { publishImage } from "./publish.ts";
 * import { MemoryStore } from "../../src/store/memory.ts";
 *
 * const store = new MemoryStore();
 * const { manifest } = await publishImage(store, new Uint8Array(8192).fill(1), {
 *   name: "app",
 *   sequence: 1,
 *   chunkSize: 4096,
 * });
 * console.log(manifest.imageLength); // 8192
 * ```
 */
export async function publishImage(
  store: BlobStore,
  image: Uint8Array,
  options: PublishOptions,
): Promise<Published> {
  const { name, sequence, chunkSize } = options;
  const pageSize = options.pageSize ?? Math.min(4096, chunkSize);
  const chunks = splitImage(image, chunkSize);
  const ids = (await chunkIds(chunks)).map((id, i) => (isZeroChunk(chunks[i]!) ? ZERO_ID : id));
  const uploaded = new Set<string>();
  const placed = new Map<string, ChunkLocation>();
  const packKeys: string[] = [];
  let batch: { id: ChunkId; object: Uint8Array }[] = [];
  let batchBytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const pack = await buildPack(batch);
    batch.forEach(({ id }, k) => placed.set(idToHex(id), pack.locations[k]!));
    packKeys.push(packKey(pack.id));
    await store.put(packKey(pack.id), pack.bytes);
    batch = [];
    batchBytes = 0;
  };
  for (let i = 1; i < chunks.length; i++) {
    const id = ids[i]!;
    const key = chunkKey(id);
    if (idsEqual(id, ZERO_ID) || uploaded.has(key)) continue;
    uploaded.add(key);
    const object = encodeChunk(chunks[i]!);
    if (options.packBytes === undefined) {
      await store.put(key, object);
      continue;
    }
    batch.push({ id, object });
    batchBytes += object.length;
    if (batchBytes >= options.packBytes) await flush();
  }
  await flush();
  const locations = ids.slice(1).map((id) => placed.get(idToHex(id)));
  const now = Date.now();
  const built = await buildManifest(
    {
      identity: { name, hostname: "", sourcePath: "" },
      sequence,
      createdMs: now,
      sourceMtimeMs: now - 1000,
      pageSize,
      imageLength: image.length,
      chunkSize,
      imageSha256: new Uint8Array(createHash("sha256").update(image).digest()),
      chunk0: image.slice(0, Math.min(chunkSize, image.length)),
    },
    ids.slice(1),
    locations,
  );
  const { manifest, manifestSha256, indexIds } = built;
  const manifestBytes = built.bytes;
  for (const [k, bytes] of built.indexChunks.entries()) {
    await store.put(chunkKey(indexIds[k] as ChunkId), encodeChunk(bytes));
  }
  await store.put(manifestKey(name, sequence), manifestBytes);
  if (!options.skipPointer) {
    await store.put(
      pointerKey(name),
      await encodePointer({ sequence, manifestSha256, createdMs: now, writer: "test" }),
    );
  }
  return { manifest, manifestBytes, ids, indexIds, locations, packKeys };
}

/** Options of {@linkcode makeImage}. */
export interface MakeImageOptions {
  chunkSize: number;
  /** Chunks (by index) filled with zero bytes. */
  zeroChunks?: readonly number[];
  /** Chunks (by index) that repeat chunk 1's bytes. */
  repeatChunks?: readonly number[];
  /** Varies the bytes. @default {1} */
  seed?: number;
}

/**
 * An image of `length` bytes whose chunks all differ (and do not compress), except the chunks asked to be
 * zero or to repeat chunk 1.
 *
 * @example An image with a zero chunk
 * ```ts
 * import { makeImage } from "./publish.ts";
 * const image = makeImage(3 * 4096, { chunkSize: 4096, zeroChunks: [1] });
 * console.log(image[4096], image.length); // 0 12288
 * ```
 */
export function makeImage(length: number, options: MakeImageOptions): Uint8Array {
  const { chunkSize, zeroChunks = [], repeatChunks = [], seed = 1 } = options;
  const image = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    image[i] = x & 0xff;
  }
  for (const k of zeroChunks) image.fill(0, k * chunkSize, (k + 1) * chunkSize);
  const first = image.slice(chunkSize, 2 * chunkSize);
  for (const k of repeatChunks) {
    const at = k * chunkSize;
    image.set(first.subarray(0, Math.min(chunkSize, length - at)), at);
  }
  return image;
}
