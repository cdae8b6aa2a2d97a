/**
 * Where chunks live in a store (`docs/FORMAT.md`, "Objects and keys"): `chunks/<hh>/<id>`. Chunk keys are
 * built here, below the manifest layer, so that reading a chunk needs nothing from manifests;
 * `src/manifest/keys.ts` re-exports them with the rest of the key layout.
 *
 * @module
 */

import { checkId, hexToId, idToHex } from "./ids.ts";

/** The prefix every chunk's key shares. */
export const CHUNKS_PREFIX = "chunks/";

/** The prefix every pack's key shares. */
export const PACKS_PREFIX = "packs/";

const CHUNK_KEY = /^chunks\/([0-9a-f]{2})\/([0-9a-f]{64})$/;
const PACK_KEY = /^packs\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

/**
 * The key of the chunk `id`: `chunks/<first two hex digits>/<64 hex digits>`. Throws `TypeError` unless
 * `id` is 32 bytes.
 *
 * @example
 * ```ts
 * import { chunkKey } from "./keys.ts";
 * console.log(chunkKey(new Uint8Array(32).fill(0xab)).slice(0, 13)); // "chunks/ab/abab"
 * ```
 */
export function chunkKey(id: Uint8Array): string {
  checkId(id, "chunk id");
  const hex = idToHex(id);
  return `${CHUNKS_PREFIX}${hex.slice(0, 2)}/${hex}`;
}

/**
 * The id a chunk key names, or `undefined` when `key` is not a chunk key (including when its two-digit
 * folder does not match the id).
 *
 * @example
 * ```ts
 * import { parseChunkKey } from "./keys.ts";
 * console.log(parseChunkKey("chunks/ab/" + "ab".repeat(32))?.length); // 32
 * ```
 */
export function parseChunkKey(key: string): Uint8Array | undefined {
  const match = CHUNK_KEY.exec(key);
  if (!match || !(match[2] as string).startsWith(match[1] as string)) return undefined;
  return hexToId(match[2] as string);
}

/**
 * The key of the pack object whose SHA-256 is `id`: `packs/<first two hex digits>/<64 hex digits>`.
 * Throws `TypeError` for an id that is not 32 bytes.
 *
 * @example
 * ```ts
 * import { packKey } from "./keys.ts";
 * console.log(packKey(new Uint8Array(32).fill(0xab)).slice(0, 12)); // "packs/ab/abab"
 * ```
 */
export function packKey(id: Uint8Array): string {
  checkId(id, "pack id");
  const hex = idToHex(id);
  return `${PACKS_PREFIX}${hex.slice(0, 2)}/${hex}`;
}

/** The pack id a pack key names, or `undefined` when `key` is not a pack key. */
export function parsePackKey(key: string): Uint8Array | undefined {
  const match = PACK_KEY.exec(key);
  if (!match || !(match[2] as string).startsWith(match[1] as string)) return undefined;
  return hexToId(match[2] as string);
}
