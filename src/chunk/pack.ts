/**
 * Pack objects (`docs/FORMAT.md`, "Packs"): many chunk objects in one store object, so moving a whole
 * database costs one request per pack instead of one per chunk. Each chunk inside keeps its own chunk
 * object bytes, read alone with a ranged GET and checked against its id like any chunk; the pack's table of
 * contents lets a tool that has no manifest (touch, gc, a person) walk it.
 *
 * @module
 */

import { TesseraError } from "../errors.ts";
import { CHUNK_HEADER_LENGTH } from "./codec.ts";
import { type ChunkId, chunkId, ID_LENGTH, idToHex } from "./ids.ts";

const MAGIC = [0x54, 0x53, 0x50, 0x4b]; // "TSPK"
const VERSION = 1;

/** Bytes before a pack's table of contents. */
export const PACK_HEADER_LENGTH = 24;

/** Bytes of one entry of a pack's table of contents: a chunk id, its offset and its length. */
export const PACK_ENTRY_LENGTH = ID_LENGTH + 8;

/**
 * How many bytes of chunk objects a writer puts in one pack before it starts the next: 8 MiB, the part
 * size S3 clients use for multipart transfers. A pack is one PUT and at most two ranged GETs of a reader's
 * run, a failed PUT resends at most this much, and a GiB of image takes about 128 packs.
 */
export const PACK_TARGET_BYTES = 8 * 1024 * 1024;

/** The largest pack a reader accepts, in bytes (offsets and lengths are u32). */
export const MAX_PACK_LENGTH = 2 ** 32 - 1;

/** Where a chunk object lives inside a pack. */
export interface ChunkLocation {
  /** The pack's id: the SHA-256 of the whole pack object. */
  pack: ChunkId;
  /** The pack object's length in bytes. */
  packLength: number;
  /** Where the chunk object starts in the pack. */
  offset: number;
  /** The chunk object's length in bytes (header and payload, as stored). */
  length: number;
}

/** A pack built by {@linkcode buildPack}. */
export interface BuiltPack {
  id: ChunkId;
  bytes: Uint8Array;
  /** Where each chunk object went, in the order given. */
  locations: ChunkLocation[];
}

/**
 * Builds a pack of `chunks` (each an encoded chunk object and the id of its uncompressed bytes), in the
 * order given. Throws `RangeError` for no chunks or a pack past {@linkcode MAX_PACK_LENGTH}.
 *
 * @example
 * ```ts
 * import { buildPack } from "./pack.ts";
 * import { encodeChunk } from "./codec.ts";
 * import { chunkId } from "./ids.ts";
 * const bytes = new Uint8Array(4096).fill(3);
 * const pack = await buildPack([{ id: await chunkId(bytes), object: encodeChunk(bytes) }]);
 * console.log(pack.locations[0]!.offset); // 64: after the header and one table entry
 * ```
 */
export async function buildPack(chunks: readonly { id: ChunkId; object: Uint8Array }[]): Promise<BuiltPack> {
  if (chunks.length === 0) throw new RangeError("Cannot build a pack of no chunks");
  const start = PACK_HEADER_LENGTH + chunks.length * PACK_ENTRY_LENGTH;
  const length = chunks.reduce((n, c) => n + c.object.length, start);
  if (length > MAX_PACK_LENGTH) throw new RangeError(`Cannot build a pack of ${length} bytes: over 4 GiB`);
  const bytes = new Uint8Array(length);
  const view = new DataView(bytes.buffer);
  bytes.set(MAGIC, 0);
  bytes[4] = VERSION;
  view.setUint32(8, chunks.length, true);
  // Random bytes make every pack a new object, even of chunks packed before: a writer never writes over
  // an old copy that a collector may be deleting (docs/HISTORY.md).
  crypto.getRandomValues(bytes.subarray(16, 24));
  const offsets: number[] = [];
  let at = start;
  chunks.forEach(({ id, object }, i) => {
    const entry = PACK_HEADER_LENGTH + i * PACK_ENTRY_LENGTH;
    bytes.set(id, entry);
    view.setUint32(entry + ID_LENGTH, at, true);
    view.setUint32(entry + ID_LENGTH + 4, object.length, true);
    bytes.set(object, at);
    offsets.push(at);
    at += object.length;
  });
  const id = await chunkId(bytes);
  return {
    id,
    bytes,
    locations: chunks.map((c, i) => ({
      pack: id,
      packLength: length,
      offset: offsets[i]!,
      length: c.object.length,
    })),
  };
}

/** One entry of a pack's table of contents. */
export interface PackEntry {
  id: ChunkId;
  offset: number;
  length: number;
}

/**
 * The table of contents of the pack object `bytes`, checked against the pack's id when `id` is given.
 * Throws `TesseraError` `CORRUPT_CHUNK` naming the pack for a bad header, an entry outside the pack, entries
 * that overlap or leave gaps, or bytes whose SHA-256 is not `id`.
 *
 * @example
 * ```ts
 * import { buildPack, readPackContents } from "./pack.ts";
 * import { encodeChunk } from "./codec.ts";
 * import { chunkId } from "./ids.ts";
 * const bytes = new Uint8Array(4096).fill(3);
 * const pack = await buildPack([{ id: await chunkId(bytes), object: encodeChunk(bytes) }]);
 * console.log((await readPackContents(pack.bytes, pack.id)).length); // 1
 * ```
 */
export async function readPackContents(bytes: Uint8Array, id?: ChunkId): Promise<PackEntry[]> {
  const name = id === undefined ? "a pack" : `pack ${idToHex(id)}`;
  const fail = (reason: string): never => {
    throw new TesseraError("CORRUPT_CHUNK", `Cannot read ${name}: ${reason}`);
  };
  if (bytes.length < PACK_HEADER_LENGTH) fail(`it is ${bytes.length} bytes, shorter than its header`);
  if (MAGIC.some((b, i) => bytes[i] !== b)) fail("it does not start with TSPK");
  if (bytes[4] !== VERSION) fail(`format version ${bytes[4]} is not one this reader knows (1)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0 || view.getUint32(12, true) !== 0) {
    fail("the reserved header bytes are not zero");
  }
  if (id !== undefined) {
    const actual = await chunkId(bytes);
    if (idToHex(actual) !== idToHex(id)) fail(`its bytes hash to ${idToHex(actual)}`);
  }
  const count = view.getUint32(8, true);
  let at = PACK_HEADER_LENGTH + count * PACK_ENTRY_LENGTH;
  if (count === 0 || at > bytes.length) fail(`its table of ${count} chunks does not fit`);
  const entries: PackEntry[] = [];
  for (let i = 0; i < count; i++) {
    const entry = PACK_HEADER_LENGTH + i * PACK_ENTRY_LENGTH;
    const offset = view.getUint32(entry + ID_LENGTH, true);
    const length = view.getUint32(entry + ID_LENGTH + 4, true);
    if (offset !== at || length < CHUNK_HEADER_LENGTH || offset + length > bytes.length) {
      fail(`entry ${i} (${length} bytes at ${offset}) does not follow the one before it`);
    }
    entries.push({ id: bytes.slice(entry, entry + ID_LENGTH), offset, length });
    at = offset + length;
  }
  if (at !== bytes.length) fail(`${bytes.length - at} bytes follow its last chunk`);
  return entries;
}
