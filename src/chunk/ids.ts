/**
 * Chunk ids (SHA-256 of a chunk's bytes) and cutting an image into chunks.
 *
 * @module
 */

import { sha256, toHex } from "../bytes.ts";

/** The id of a chunk: SHA-256 of its uncompressed bytes, 32 bytes. */
export type ChunkId = Uint8Array;

/** Length of a chunk id in bytes. */
export const ID_LENGTH = 32;

/**
 * The id that stands for a chunk of zero bytes, which is never stored: 32 zero bytes. Shared; never modify it.
 */
export const ZERO_ID: Uint8Array = new Uint8Array(ID_LENGTH);

/**
 * {@linkcode ZERO_ID} as 64 hex digits, as chunk lists held in hex (the spool, the sync record) list it.
 *
 * @example
 * ```ts
 * import { idToHex, ZERO_HEX, ZERO_ID } from "./ids.ts";
 * console.log(idToHex(ZERO_ID) === ZERO_HEX); // true
 * ```
 */
export const ZERO_HEX: string = "0".repeat(ID_LENGTH * 2);

/** How many digests {@linkcode chunkIds} keeps in flight; WebCrypto copies each input, so this bounds memory. */
const DIGEST_BATCH = 64;

/**
 * The id of a chunk: the SHA-256 of `bytes`.
 *
 * @example
 * ```ts
 * import { chunkId, idToHex } from "./ids.ts";
 * console.log(idToHex(await chunkId(new TextEncoder().encode("abc"))).slice(0, 8)); // "ba7816bf"
 * ```
 */
export async function chunkId(bytes: Uint8Array): Promise<Uint8Array> {
  return await sha256(bytes);
}

/**
 * The ids of `chunks`, in order, hashing several at a time.
 *
 * @example
 * ```ts
 * import { chunkIds, splitImage } from "./ids.ts";
 * const ids = await chunkIds(splitImage(new Uint8Array(10000), 4096));
 * console.log(ids.length); // 3
 * ```
 */
export async function chunkIds(chunks: readonly Uint8Array[]): Promise<Uint8Array[]> {
  const ids: Uint8Array[] = [];
  for (let i = 0; i < chunks.length; i += DIGEST_BATCH) {
    ids.push(...await Promise.all(chunks.slice(i, i + DIGEST_BATCH).map(chunkId)));
  }
  return ids;
}

/**
 * An id as 64 lower-case hex digits. Throws `TypeError` unless `id` is 32 bytes.
 *
 * @example
 * ```ts
 * import { idToHex, ZERO_ID } from "./ids.ts";
 * console.log(idToHex(ZERO_ID) === "0".repeat(64)); // true
 * ```
 */
export function idToHex(id: Uint8Array): string {
  checkId(id, "id");
  return toHex(id);
}

/**
 * The id written as `hex`. Throws `TypeError` unless `hex` is exactly 64 lower-case hex digits.
 *
 * @example
 * ```ts
 * import { hexToId } from "./ids.ts";
 * console.log(hexToId("ab".repeat(32))[0]); // 171
 * ```
 */
export function hexToId(hex: string): Uint8Array {
  if (typeof hex !== "string" || !/^[0-9a-f]{64}$/.test(hex)) {
    throw new TypeError(`Invalid chunk id ${JSON.stringify(hex)}: expected 64 lower-case hex digits`);
  }
  const id = new Uint8Array(ID_LENGTH);
  for (let i = 0; i < ID_LENGTH; i++) id[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return id;
}

/**
 * True when `a` and `b` hold the same bytes.
 *
 * @example
 * ```ts
 * import { idsEqual, ZERO_ID } from "./ids.ts";
 * console.log(idsEqual(ZERO_ID, new Uint8Array(32))); // true
 * ```
 */
export function idsEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * True when every byte of `bytes` is zero (so the chunk is listed as {@linkcode ZERO_ID} and never stored).
 *
 * @example
 * ```ts
 * import { isZeroChunk } from "./ids.ts";
 * console.log(isZeroChunk(new Uint8Array(65536))); // true
 * ```
 */
export function isZeroChunk(bytes: Uint8Array): boolean {
  let start = 0;
  if (bytes.byteOffset % 4 === 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2);
    for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
    start = words.length * 4;
  }
  for (let i = start; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * Cuts `image` into chunks of `chunkSize` bytes (the last may be shorter) as views of `image`, without
 * copying. An empty image has no chunks. Throws `RangeError` unless `chunkSize` is a positive integer.
 *
 * @example
 * ```ts
 * import { splitImage } from "./ids.ts";
 * console.log(splitImage(new Uint8Array(10000), 4096).map((c) => c.length)); // [4096, 4096, 1808]
 * ```
 */
export function splitImage(image: Uint8Array, chunkSize: number): Uint8Array[] {
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
    throw new RangeError(`Cannot split an image: chunkSize must be a positive integer, not ${chunkSize}`);
  }
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < image.length; at += chunkSize) chunks.push(image.subarray(at, at + chunkSize));
  return chunks;
}

/** Throws `TypeError` naming `field` unless `id` is a 32-byte `Uint8Array`. */
export function checkId(id: unknown, field: string): asserts id is Uint8Array {
  if (!(id instanceof Uint8Array) || id.length !== ID_LENGTH) {
    throw new TypeError(`Invalid ${field}: expected a ${ID_LENGTH}-byte Uint8Array`);
  }
}
