/**
 * Chunk objects (`docs/FORMAT.md`, "Chunks"): a 12-byte header, then the chunk's bytes raw or as one zstd
 * frame.
 *
 * @module
 */

import { TesseraError } from "../errors.ts";
import { checkId, chunkId, idsEqual, idToHex } from "./ids.ts";
import { type CodecChoice, compressPayload, decompressExactly, nodeZstd, type Zstd } from "./zstd.ts";

/** The largest chunk, in bytes (1 MiB). */
export const MAX_CHUNK_LENGTH = 1024 * 1024;
/** Length of a chunk object's header in bytes. */
export const CHUNK_HEADER_LENGTH = 12;
const MAGIC = [0x54, 0x53, 0x43, 0x4b]; // "TSCK"
const VERSION = 1;

/** Options for {@linkcode encodeChunk}. */
export interface EncodeChunkOptions {
  /** How to store the bytes. @default {"auto"} */
  codec?: CodecChoice;
  /** The zstd implementation. @default {nodeZstd} */
  zstd?: Zstd;
}

/** Options for {@linkcode decodeChunk}. */
export interface DecodeChunkOptions {
  /** The zstd implementation. @default {nodeZstd} */
  zstd?: Zstd;
}

/**
 * The zstd level chunks are compressed at: 1, zstd's fast setting. Full syncs compress every chunk, and on a
 * 2-core machine level 1 compresses about twice as fast as the default 3 (0.9 s against 2.0 s for 256 MiB
 * of random rows) for a few percent of size; the rest of the write moves at the speed of the store.
 */
export const CHUNK_ZSTD_LEVEL = 1;

/**
 * The chunk object storing `bytes` (1 byte to 1 MiB). Throws `RangeError` for a length out of range or an
 * unknown codec.
 *
 * @example Encoding and decoding a chunk
 * ```ts
 * import { chunkId } from "./ids.ts";
 * import { decodeChunk, encodeChunk } from "./codec.ts";
 * const bytes = new Uint8Array(65536).fill(1);
 * const object = encodeChunk(bytes);
 * console.log(object.length < 100); // true: zstd saved more than a sixteenth
 * console.log((await decodeChunk(await chunkId(bytes), object)).length); // 65536
 * ```
 */
export function encodeChunk(bytes: Uint8Array, options: EncodeChunkOptions = {}): Uint8Array {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError("Cannot encode a chunk: bytes must be a Uint8Array");
  }
  if (bytes.length < 1 || bytes.length > MAX_CHUNK_LENGTH) {
    throw new RangeError(`Cannot encode a chunk of ${bytes.length} bytes: a chunk is 1 byte to 1 MiB`);
  }
  const [code, payload] = compressPayload(bytes, { level: CHUNK_ZSTD_LEVEL, ...options });
  const object = new Uint8Array(CHUNK_HEADER_LENGTH + payload.length);
  object.set(MAGIC, 0);
  object[4] = VERSION;
  object[5] = code;
  new DataView(object.buffer).setUint32(8, bytes.length, true);
  object.set(payload, CHUNK_HEADER_LENGTH);
  return object;
}

/**
 * The bytes of the chunk `id`, read from its stored `object`, after every check `docs/FORMAT.md` asks of a
 * reader. A raw chunk's bytes are a view of `object`. Throws `TesseraError` `CORRUPT_CHUNK` naming the id
 * and what is wrong, or `CHECKSUM_MISMATCH` when the object is well formed but its bytes are not those of
 * `id`. Never produces more than 1 MiB + 1 bytes, whatever `object` claims.
 *
 * @example Rejecting a chunk stored under the wrong id
 * ```ts
 * import { ZERO_ID } from "./ids.ts";
 * import { decodeChunk, encodeChunk } from "./codec.ts";
 * try {
 *   await decodeChunk(ZERO_ID, encodeChunk(new Uint8Array([1])));
 * } catch (error) {
 *   console.log((error as { code: string }).code); // "CHECKSUM_MISMATCH"
 * }
 * ```
 */
export async function decodeChunk(
  id: Uint8Array,
  object: Uint8Array,
  options: DecodeChunkOptions = {},
): Promise<Uint8Array> {
  checkId(id, "chunk id");
  const bytes = unpack(id, object, options.zstd ?? nodeZstd);
  const actual = await chunkId(bytes);
  if (!idsEqual(actual, id)) {
    throw new TesseraError(
      "CHECKSUM_MISMATCH",
      `Cannot decode chunk ${idToHex(id)}: its bytes hash to ${idToHex(actual)}`,
    );
  }
  return bytes;
}

function unpack(id: Uint8Array, object: Uint8Array, zstd: Zstd): Uint8Array {
  const fail = (reason: string, cause?: unknown): never => {
    const message = `Cannot decode chunk ${idToHex(id)}: ${reason}`;
    throw new TesseraError("CORRUPT_CHUNK", message, cause === undefined ? {} : { cause });
  };
  if (!(object instanceof Uint8Array)) {
    throw new TypeError("Cannot decode a chunk: object must be a Uint8Array");
  }
  if (object.length < CHUNK_HEADER_LENGTH) {
    fail(`the object is ${object.length} bytes, shorter than the ${CHUNK_HEADER_LENGTH}-byte header`);
  }
  if (MAGIC.some((b, i) => object[i] !== b)) fail("the object does not start with the magic TSCK");
  if (object[4] !== VERSION) {
    fail(`format version ${object[4]} is not supported by this Tessera; upgrade it`);
  }
  const codec = object[5];
  if (codec !== 0 && codec !== 1) fail(`unknown codec ${codec}`);
  if (object[6] !== 0 || object[7] !== 0) fail("the reserved header bytes are not zero");
  const length = new DataView(object.buffer, object.byteOffset, object.byteLength).getUint32(8, true);
  if (length < 1 || length > MAX_CHUNK_LENGTH) {
    fail(`the header claims ${length} bytes; a chunk is 1 to ${MAX_CHUNK_LENGTH} bytes`);
  }
  const payload = object.subarray(CHUNK_HEADER_LENGTH);
  if (codec === 0) {
    if (payload.length !== length) fail(`the raw payload is ${payload.length} bytes, not ${length}`);
    return payload;
  }
  try {
    return decompressExactly(payload, { length, zstd });
  } catch (error) {
    return fail((error as Error).message, error);
  }
}
