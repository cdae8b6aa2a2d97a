/**
 * Repacking: which chunks a publish moves out of the objects they live in and into its new packs, so a
 * long-lived database does not end up scattered over thousands of small or mostly dead objects. A cold
 * restore then reads a bounded number of objects per GiB ({@linkcode objectBound}), and `tessera gc`
 * deletes the old objects once no kept snapshot references them. Pure policy: `publish.ts` does the moving.
 *
 * @module
 */

import { ZERO_HEX } from "../chunk/ids.ts";
import { type ChunkLocation, PACK_TARGET_BYTES } from "../chunk/pack.ts";
import { idToHex } from "../chunk/ids.ts";

/** A pack less than this fraction of whose bytes the new snapshot still uses is rewritten. */
export const REPACK_BELOW = 0.5;

/** The most bytes of chunk objects one publish moves (later publishes go on where it stopped). */
export const REPACK_MAX_BYTES = 64 * 1024 * 1024;

/**
 * The most objects (packs and chunk objects) a snapshot of `imageLength` bytes should have its data spread
 * over: twice the packs the image would fill, plus 16. A publish that would leave more moves the smallest.
 * With 8 MiB packs that is at most 272 objects per GiB of image, plus 16.
 */
export function objectBound(imageLength: number): number {
  return 2 * Math.ceil(imageLength / PACK_TARGET_BYTES) + 16;
}

/** What {@linkcode planRepack} decided. */
export interface RepackPlan {
  /** Hex ids of the chunks to move, in image order. */
  move: string[];
  /** Bytes of chunk objects they take (chunk objects of their own counted at `chunkSize`). */
  bytes: number;
  /** Objects the snapshot's data would live in without the move, and with it (before the new packs). */
  objectsBefore: number;
  objectsAfter: number;
}

/**
 * Chooses the chunks of an image to move into new packs: every chunk of a pack that less than
 * {@linkcode REPACK_BELOW} of is still used, then, while the image's data would live in more than
 * {@linkcode objectBound} objects, the chunks of the objects that hold the fewest of its bytes; at most
 * {@linkcode REPACK_MAX_BYTES} in all. `ids` are the image's chunks (hex, image order), `where` says where
 * each present chunk lives (`undefined`: its own object), and `fresh` lists the chunks the publish writes
 * anyway.
 */
export function planRepack(
  ids: readonly string[],
  where: ReadonlyMap<string, ChunkLocation | undefined>,
  fresh: ReadonlySet<string>,
  imageLength: number,
  chunkSize: number,
): RepackPlan {
  // The objects the image's reused chunks live in, with the bytes of them it uses.
  const objects = new Map<string, { used: number; length: number | undefined; chunks: string[] }>();
  const seen = new Set<string>();
  for (const hex of ids) {
    if (hex === ZERO_HEX || fresh.has(hex) || seen.has(hex) || !where.has(hex)) continue;
    seen.add(hex);
    const place = where.get(hex);
    const key = place ? `p${idToHex(place.pack)}` : `c${hex}`;
    let object = objects.get(key);
    if (!object) objects.set(key, object = { used: 0, length: place?.packLength, chunks: [] });
    object.used += place?.length ?? chunkSize;
    object.chunks.push(hex);
  }
  const objectsBefore = objects.size;
  const chosen = new Set<string>();
  let bytes = 0;
  const take = (key: string) => {
    const object = objects.get(key)!;
    if (bytes + object.used > REPACK_MAX_BYTES) return false;
    bytes += object.used;
    chosen.add(key);
    return true;
  };
  const sparse = [...objects].filter(([, o]) => o.length !== undefined && o.used / o.length < REPACK_BELOW)
    .sort(([, a], [, b]) => a.used / a.length! - b.used / b.length!);
  for (const [key] of sparse) if (!take(key)) break;
  const bound = objectBound(imageLength);
  const smallest = [...objects].filter(([key]) => !chosen.has(key)).sort(([, a], [, b]) => a.used - b.used);
  for (const [key] of smallest) {
    if (objects.size - chosen.size <= bound) break;
    if (!take(key)) break;
  }
  const moving = new Set<string>();
  for (const key of chosen) for (const hex of objects.get(key)!.chunks) moving.add(hex);
  const move = [...seen].filter((hex) => moving.has(hex));
  return { move, bytes, objectsBefore, objectsAfter: objectsBefore - chosen.size };
}
