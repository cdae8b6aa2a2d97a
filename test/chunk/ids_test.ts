import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import {
  chunkId,
  chunkIds,
  hexToId,
  idsEqual,
  idToHex,
  isZeroChunk,
  splitImage,
  ZERO_ID,
} from "../../src/chunk/ids.ts";
import { randomBytes } from "./_random.ts";

const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash("sha256").update(bytes).digest());

describe("chunk ids", () => {
  it("chunkId() is the SHA-256 of the bytes", async () => {
    assert.equal(
      idToHex(await chunkId(new TextEncoder().encode("abc"))),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 3000 }), async (bytes) => {
        assert.deepEqual(await chunkId(bytes), sha256(bytes));
      }),
      { numRuns: 200 },
    );
  });

  it("chunkIds() hashes views of one buffer in order, beyond one batch", async () => {
    const image = randomBytes(200 * 100 + 7, 1);
    const chunks = splitImage(image, 100);
    const ids = await chunkIds(chunks);
    assert.equal(ids.length, 201);
    ids.forEach((id, i) => assert.deepEqual(id, sha256(chunks[i] as Uint8Array)));
    assert.deepEqual(await chunkIds([]), []);
  });

  it("idToHex() and hexToId() round trip any id", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (id) => {
        const hex = idToHex(id);
        assert.match(hex, /^[0-9a-f]{64}$/);
        assert.deepEqual(hexToId(hex), id);
      }),
    );
    assert.equal(idToHex(ZERO_ID), "0".repeat(64));
  });

  it("hexToId() rejects anything but 64 lower-case hex digits with a TypeError", () => {
    for (
      const bad of ["", "0".repeat(63), "0".repeat(65), "A".repeat(64), "g".repeat(64), ` ${"0".repeat(63)}`]
    ) {
      assert.throws(
        () => hexToId(bad),
        { name: "TypeError", message: /expected 64 lower-case hex digits/ },
        bad,
      );
    }
    assert.throws(() => idToHex(new Uint8Array(31)), TypeError);
  });

  it("idsEqual() compares bytes", () => {
    assert.ok(idsEqual(ZERO_ID, new Uint8Array(32)));
    assert.ok(!idsEqual(ZERO_ID, new Uint8Array(32).fill(1)));
    assert.ok(!idsEqual(ZERO_ID, new Uint8Array(31)));
  });

  it("isZeroChunk() finds a non-zero byte anywhere, at any alignment", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 9 }),
        fc.integer({ min: 0, max: 300 }),
        fc.nat(),
        (offset, length, at) => {
          const buffer = new Uint8Array(offset + length + 3);
          const view = buffer.subarray(offset, offset + length);
          assert.equal(isZeroChunk(view), true);
          buffer[offset + length] = 1; // just past the view
          if (offset > 0) buffer[offset - 1] = 1;
          assert.equal(isZeroChunk(view), true);
          if (length === 0) return;
          view[at % length] = 0x80;
          assert.equal(isZeroChunk(view), false);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("splitImage() cuts views of chunkSize bytes, the last one short, without copying", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 1, max: 700 }), (length, size) => {
        const image = randomBytes(length, length + 1);
        const chunks = splitImage(image, size);
        assert.equal(chunks.length, Math.ceil(length / size));
        chunks.forEach((chunk, i) => {
          assert.equal(chunk.buffer, image.buffer);
          assert.equal(chunk.byteOffset, i * size);
          assert.equal(chunk.length, Math.min(size, length - i * size));
        });
      }),
    );
    assert.throws(() => splitImage(new Uint8Array(1), 0), RangeError);
  });
});
