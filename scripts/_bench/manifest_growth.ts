/**
 * The format's incremental-manifest property at 1 GiB, computed with the real encoders rather than
 * measured on a 1 GiB file: what a one-page change uploads besides the changed data chunk and chunk 0.
 *
 * @module
 */

import { encodeChunk } from "../../src/chunk/codec.ts";
import { idsEqual } from "../../src/chunk/ids.ts";
import type { ChunkLocation } from "../../src/chunk/pack.ts";
import { buildChunkList } from "../../src/manifest/build_chunk_list.ts";
import { expandChunkList } from "../../src/manifest/chunk_list.ts";
import { decodeManifest, encodeManifest, encodePointer } from "../../src/manifest/codec.ts";
import { imageDigest } from "../../src/manifest/digest.ts";
import type { ChunkId, Manifest } from "../../src/manifest/types.ts";

/** What a one-page change to a 1 GiB image costs in manifest bytes. */
export interface ManifestGrowth {
  imageBytes: number;
  chunkSize: number;
  /** Chunks in the image, chunk 0 included. */
  chunks: number;
  indexChunks: number;
  changedIndexChunks: number;
  /** The manifest object's bytes, less the chunk 0 bytes it carries (stored raw, to count exactly). */
  manifestBesidesChunk0: number;
  /** Bytes of the changed index chunk objects, as uploaded (encodeChunk, default codec). */
  changedIndexChunkBytes: number;
  pointerBytes: number;
  /** manifestBesidesChunk0 + changedIndexChunkBytes + pointerBytes. */
  total: number;
  /** The same manifest, less chunk 0, with every id listed inline: what each change would upload. */
  inlineManifestBesidesChunk0: number;
}

const CHUNK_SIZE = 64 * 1024;
const IMAGE_BYTES = 1024 * 1024 * 1024;

/** Builds a 1 GiB image's chunk list (16,384 ids), changes one id, and measures what must go up again. */
export async function measureManifestGrowth(): Promise<ManifestGrowth> {
  const chunks = IMAGE_BYTES / CHUNK_SIZE;
  const ids = Array.from({ length: chunks - 1 }, randomId);
  // As a full sync writes them: 128 chunk objects of 64 KiB and 12 bytes to an 8 MiB pack.
  const packs = Array.from({ length: Math.ceil(ids.length / 128) }, randomId);
  const locations: ChunkLocation[] = ids.map((_, i) => ({
    pack: packs[Math.floor(i / 128)]!,
    packLength: 24 + 128 * (40 + CHUNK_SIZE + 12),
    offset: 24 + 128 * 40 + (i % 128) * (CHUNK_SIZE + 12),
    length: CHUNK_SIZE + 12,
  }));
  const before = buildChunkList(ids, { locations });
  const changedIds = [...ids];
  const changedLocations = [...locations];
  // One page changed in a chunk near the middle: one id changes, and it lives in a new one-chunk pack.
  const middle = Math.floor(chunks / 2);
  changedIds[middle] = randomId();
  changedLocations[middle] = {
    pack: randomId(),
    packLength: 24 + 40 + CHUNK_SIZE + 12,
    offset: 64,
    length: CHUNK_SIZE + 12,
  };
  const after = buildChunkList(changedIds, { locations: changedLocations });
  if (before.list.kind !== "indexed" || after.list.kind !== "indexed") {
    throw new Error(`Cannot measure manifest growth: ${chunks} chunks were listed inline`);
  }
  const [beforeIndex, afterIndex] = [before.list.indexIds, after.list.indexIds];
  const changed = [...afterIndex.keys()].filter((k) => !idsEqual(afterIndex[k]!, beforeIndex[k]!));
  const changedIndexChunkBytes = changed
    .map((k) => encodeChunk(after.indexChunks[k] as Uint8Array).length)
    .reduce((a, b) => a + b, 0);

  const chunk0 = crypto.getRandomValues(new Uint8Array(CHUNK_SIZE));
  const manifest: Manifest = {
    version: 2,
    imageDigest: await imageDigest(IMAGE_BYTES, CHUNK_SIZE, chunk0, changedIds),
    identity: { name: "bench-1gib", hostname: "", sourcePath: "" },
    sequence: 2,
    createdMs: Date.now(),
    sourceMtimeMs: Date.now(),
    pageSize: 4096,
    imageLength: IMAGE_BYTES,
    chunkSize: CHUNK_SIZE,
    imageSha256: new Uint8Array(32),
    chunk0,
    chunks: after.list,
  };
  const object = await encodeManifest(manifest, { codec: "none" });
  await checkRoundTrip(object, after.indexChunks, changedIds);
  const inline = buildChunkList(changedIds, { inlineMax: changedIds.length, locations: changedLocations });
  const inlineObject = await encodeManifest({ ...manifest, chunks: inline.list }, { codec: "none" });
  const pointer = await encodePointer({
    sequence: 2,
    manifestSha256: new Uint8Array(32),
    createdMs: Date.now(),
    writer: "",
  });
  const manifestBesidesChunk0 = object.length - CHUNK_SIZE;
  return {
    imageBytes: IMAGE_BYTES,
    chunkSize: CHUNK_SIZE,
    chunks,
    indexChunks: after.list.indexIds.length,
    changedIndexChunks: changed.length,
    manifestBesidesChunk0,
    changedIndexChunkBytes,
    pointerBytes: pointer.length,
    total: manifestBesidesChunk0 + changedIndexChunkBytes + pointer.length,
    inlineManifestBesidesChunk0: inlineObject.length - CHUNK_SIZE,
  };
}

// The numbers only mean something if a reader gets the same ids back.
async function checkRoundTrip(object: Uint8Array, indexChunks: Uint8Array[], ids: ChunkId[]): Promise<void> {
  const decoded = await decodeManifest(object, { what: "the 1 GiB manifest" });
  const { ids: listed } = await expandChunkList(
    decoded.chunks,
    async (_id, k) => indexChunks[k] as Uint8Array,
    decoded.version ?? 1,
  );
  if (listed.length !== ids.length || listed.some((id, i) => !idsEqual(id, ids[i] as ChunkId))) {
    throw new Error(
      "Cannot measure manifest growth: the 1 GiB manifest does not list the ids it was built from",
    );
  }
}

function randomId(): ChunkId {
  return crypto.getRandomValues(new Uint8Array(32));
}
