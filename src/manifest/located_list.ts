/**
 * A located chunk list (`docs/FORMAT.md`, "Located lists"): chunk ids with where each lives, as format 2
 * manifests hold them inline and as format 2 index chunks hold them. Each list carries its own table of the
 * packs it names, so an index chunk nothing changed in stays byte for byte the same from one manifest to
 * the next, and is shared.
 *
 * @module
 */

import { ID_LENGTH, idsEqual, idToHex, ZERO_ID } from "../chunk/ids.ts";
import { CHUNK_HEADER_LENGTH } from "../chunk/codec.ts";
import { type ChunkLocation, MAX_PACK_LENGTH, PACK_HEADER_LENGTH } from "../chunk/pack.ts";
import type { ChunkId } from "./types.ts";

/** Bytes of one pack of the table: its id and its length. */
const PACK_ROW = ID_LENGTH + 4;
/** Bytes of one chunk entry: its id, pack number, offset and length. */
export const LOCATED_ENTRY_LENGTH = ID_LENGTH + 12;
/** The pack number of a chunk stored as its own object, or a zero chunk. */
const OWN_OBJECT = 0xffffffff;

/** The bytes of the located list of `ids`, `locations[i]` saying where chunk `ids[i]` lives. */
export function encodeLocatedList(
  ids: readonly ChunkId[],
  locations: readonly (ChunkLocation | undefined)[] | undefined,
): Uint8Array {
  const packs = new Map<string, { number: number; id: ChunkId; length: number }>();
  for (const where of locations ?? []) {
    if (where === undefined) continue;
    const hex = idToHex(where.pack);
    if (!packs.has(hex)) packs.set(hex, { number: packs.size, id: where.pack, length: where.packLength });
  }
  const start = 4 + packs.size * PACK_ROW;
  const bytes = new Uint8Array(start + ids.length * LOCATED_ENTRY_LENGTH);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, packs.size, true);
  for (const pack of packs.values()) {
    bytes.set(pack.id, 4 + pack.number * PACK_ROW);
    view.setUint32(4 + pack.number * PACK_ROW + ID_LENGTH, pack.length, true);
  }
  ids.forEach((id, i) => {
    const at = start + i * LOCATED_ENTRY_LENGTH;
    bytes.set(id, at);
    const where = locations?.[i];
    view.setUint32(at + ID_LENGTH, where ? packs.get(idToHex(where.pack))!.number : OWN_OBJECT, true);
    view.setUint32(at + ID_LENGTH + 4, where?.offset ?? 0, true);
    view.setUint32(at + ID_LENGTH + 8, where?.length ?? 0, true);
  });
  return bytes;
}

/** A decoded located list. */
export interface LocatedList {
  ids: ChunkId[];
  locations: (ChunkLocation | undefined)[];
}

/**
 * Decodes a located list of `count` entries that must fill `bytes` exactly; calls `fail` with the reason
 * when it breaks a rule of the format.
 */
export function decodeLocatedList(
  bytes: Uint8Array,
  count: number,
  fail: (reason: string) => never,
): LocatedList {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4) fail(`a located list of ${bytes.length} bytes has no pack count`);
  const packCount = view.getUint32(0, true);
  const start = 4 + packCount * PACK_ROW;
  const expected = start + count * LOCATED_ENTRY_LENGTH;
  if (packCount > count || bytes.length !== expected) {
    fail(
      `a located list of ${count} chunks and ${packCount} packs is ${bytes.length} bytes, not ${expected}`,
    );
  }
  const packs: { id: ChunkId; length: number }[] = [];
  for (let p = 0; p < packCount; p++) {
    const at = 4 + p * PACK_ROW;
    const length = view.getUint32(at + ID_LENGTH, true);
    if (length <= PACK_HEADER_LENGTH || length > MAX_PACK_LENGTH) fail(`pack #${p} has length ${length}`);
    packs.push({ id: bytes.slice(at, at + ID_LENGTH), length });
  }
  const ids: ChunkId[] = new Array(count);
  const locations: (ChunkLocation | undefined)[] = new Array(count).fill(undefined);
  for (let i = 0; i < count; i++) {
    const at = start + i * LOCATED_ENTRY_LENGTH;
    const id = bytes.slice(at, at + ID_LENGTH);
    const number = view.getUint32(at + ID_LENGTH, true);
    const offset = view.getUint32(at + ID_LENGTH + 4, true);
    const length = view.getUint32(at + ID_LENGTH + 8, true);
    ids[i] = id;
    if (number === OWN_OBJECT) {
      if (offset !== 0 || length !== 0) fail(`entry ${i} is its own object but has an offset or length`);
      continue;
    }
    const pack = packs[number];
    if (pack === undefined) fail(`entry ${i} names pack #${number} of ${packCount}`);
    if (idsEqual(id, ZERO_ID)) fail(`entry ${i}, a zero chunk, names a pack`);
    if (offset < PACK_HEADER_LENGTH || length < CHUNK_HEADER_LENGTH || offset + length > pack!.length) {
      fail(`entry ${i} (${length} bytes at ${offset}) does not fit its ${pack!.length}-byte pack`);
    }
    locations[i] = { pack: pack!.id, packLength: pack!.length, offset, length };
  }
  return { ids, locations };
}
