import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { decodeChunk, encodeChunk } from "../../src/chunk/codec.ts";
import { chunkId, idToHex } from "../../src/chunk/ids.ts";
import { buildPack, PACK_ENTRY_LENGTH, PACK_HEADER_LENGTH, readPackContents } from "../../src/chunk/pack.ts";
import { rejectsWithCode } from "../_helpers/assert.ts";
import { randomBytes } from "./_random.ts";

async function chunks(count: number) {
  return await Promise.all(Array.from({ length: count }, async (_, i) => {
    // Some compress (repeated bytes), some do not (random).
    const bytes = i % 2 === 0 ? new Uint8Array(4096).fill(i) : randomBytes(4096, i);
    return { id: await chunkId(bytes), bytes, object: encodeChunk(bytes) };
  }));
}

describe("packs", () => {
  it("hold each chunk object byte for byte, where its location says, each decoding to its own id", async () => {
    const given = await chunks(7);
    const pack = await buildPack(given);
    assert.equal(pack.locations.length, 7);
    assert.equal(pack.locations[0]!.offset, PACK_HEADER_LENGTH + 7 * PACK_ENTRY_LENGTH);
    for (const [i, where] of pack.locations.entries()) {
      assert.equal(idToHex(where.pack), idToHex(pack.id));
      assert.equal(where.packLength, pack.bytes.length);
      const object = pack.bytes.subarray(where.offset, where.offset + where.length);
      assert.deepEqual(object, given[i]!.object);
      assert.deepEqual(await decodeChunk(given[i]!.id, object), given[i]!.bytes);
    }
    assert.equal(idToHex(pack.id), idToHex(await chunkId(pack.bytes)), "a pack's id is its SHA-256");
    const contents = await readPackContents(pack.bytes, pack.id);
    assert.deepEqual(contents.map((e) => idToHex(e.id)), given.map((c) => idToHex(c.id)));
    assert.deepEqual(contents.map((e) => e.offset), pack.locations.map((w) => w.offset));
  });

  it("are new objects each time, even of the same chunks (their header holds random bytes)", async () => {
    const given = await chunks(3);
    const [a, b] = [await buildPack(given), await buildPack(given)];
    assert.notEqual(idToHex(a.id), idToHex(b.id));
    assert.deepEqual(a.locations.map((w) => w.offset), b.locations.map((w) => w.offset));
  });

  it("are refused, naming the pack, when damaged: header, table, length or hash", async () => {
    const pack = await buildPack(await chunks(3));
    const name = new RegExp(`pack ${idToHex(pack.id)}`);
    const flip = (at: number) => {
      const bytes = pack.bytes.slice();
      bytes[at] = bytes[at]! ^ 0x01;
      return bytes;
    };
    await rejectsWithCode(readPackContents(flip(0), pack.id), "CORRUPT_CHUNK", /does not start with TSPK/);
    await rejectsWithCode(readPackContents(flip(4), pack.id), "CORRUPT_CHUNK", /format version 0/);
    await rejectsWithCode(readPackContents(flip(pack.bytes.length - 1), pack.id), "CORRUPT_CHUNK", name);
    // Without the id to check against, a table entry that does not follow the one before it is refused.
    const entryOffset = PACK_HEADER_LENGTH + PACK_ENTRY_LENGTH + 32;
    await rejectsWithCode(readPackContents(flip(entryOffset)), "CORRUPT_CHUNK", /entry 1/);
    await rejectsWithCode(
      readPackContents(pack.bytes.subarray(0, pack.bytes.length - 1)),
      "CORRUPT_CHUNK",
      /entry 2/,
    );
    await rejectsWithCode(
      readPackContents(pack.bytes.subarray(0, 10)),
      "CORRUPT_CHUNK",
      /shorter than its header/,
    );
    await assert.rejects(buildPack([]), RangeError);
  });
});
