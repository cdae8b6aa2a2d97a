/**
 * The image digest (`docs/FORMAT.md`, "Image digest"): one SHA-256 that names a whole image by its layout,
 * chunk 0 and the ordered ids of its other chunks. A writer computes it from what it already knows, without
 * reading unchanged chunks (an incremental capture included); a reader that checked every chunk against its
 * id and this digest against the manifest has checked every byte of the image.
 *
 * @module
 */

import { ID_LENGTH } from "../chunk/ids.ts";
import type { ChunkId } from "./types.ts";

const TAG = [0x54, 0x53, 0x44, 0x47]; // "TSDG"

/**
 * The image digest of an image of `imageLength` bytes cut at `chunkSize`, whose first chunk is `chunk0` and
 * whose other chunks have the ids `ids` (an all-zero id for a zero chunk).
 *
 * @example
 * ```ts
 * import { imageDigest } from "./digest.ts";
 * const digest = await imageDigest(4096, 4096, new Uint8Array(4096), []);
 * console.log(digest.length); // 32
 * ```
 */
export async function imageDigest(
  imageLength: number,
  chunkSize: number,
  chunk0: Uint8Array,
  ids: readonly ChunkId[],
): Promise<Uint8Array> {
  const chunk0Sha = new Uint8Array(
    await crypto.subtle.digest("SHA-256", chunk0 as Uint8Array<ArrayBuffer>),
  );
  const input = new Uint8Array(4 + 8 + 4 + ID_LENGTH + ids.length * ID_LENGTH);
  const view = new DataView(input.buffer);
  input.set(TAG, 0);
  view.setBigUint64(4, BigInt(imageLength), true);
  view.setUint32(12, chunkSize, true);
  input.set(chunk0Sha, 16);
  ids.forEach((id, i) => input.set(id, 16 + ID_LENGTH + i * ID_LENGTH));
  return new Uint8Array(await crypto.subtle.digest("SHA-256", input));
}
