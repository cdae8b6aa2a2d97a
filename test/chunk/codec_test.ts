import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeChunk, encodeChunk, MAX_CHUNK_LENGTH } from "../../src/chunk/codec.ts";
import { chunkId, idToHex } from "../../src/chunk/ids.ts";
import { nodeZstd, type Zstd } from "../../src/chunk/zstd.ts";
import { TesseraError } from "../../src/errors.ts";
import { chunkObject, rleFrame } from "./_frames.ts";
import { compressibleBytes, randomBytes } from "./_random.ts";

const codecs = ["auto", "none", "zstd"] as const;

/** Bytes of any length up to `max`: random, text-like, runs of one byte, or mixes. */
function chunkBytes(max: number): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 64 }),
    fc.tuple(fc.integer({ min: 1, max }), fc.integer()).map(([n, seed]) => randomBytes(n, seed)),
    fc.tuple(fc.integer({ min: 1, max }), fc.integer()).map(([n, seed]) => compressibleBytes(n, seed)),
    fc.tuple(fc.integer({ min: 1, max }), fc.integer({ min: 0, max: 255 })).map(([n, b]) =>
      new Uint8Array(n).fill(b)
    ),
  );
}

/** Counts decompress calls and the bound each is given. */
function spyZstd(): Zstd & { calls: number[] } {
  const calls: number[] = [];
  return {
    calls,
    compress: (bytes) => nodeZstd.compress(bytes),
    decompress: (bytes, max) => (calls.push(max), nodeZstd.decompress(bytes, max)),
  };
}

describe("chunk codec", () => {
  it("decodeChunk() returns the bytes encodeChunk() stored, with every codec", async () => {
    await fc.assert(
      fc.asyncProperty(chunkBytes(200 * 1024), fc.constantFrom(...codecs), async (bytes, codec) => {
        const object = encodeChunk(bytes, { codec });
        assert.deepEqual(await decodeChunk(await chunkId(bytes), object), bytes);
      }),
      { numRuns: 150 },
    );
    for (
      const bytes of [new Uint8Array(1), randomBytes(MAX_CHUNK_LENGTH, 3), new Uint8Array(MAX_CHUNK_LENGTH)]
    ) {
      for (const codec of codecs) {
        assert.deepEqual(await decodeChunk(await chunkId(bytes), encodeChunk(bytes, { codec })), bytes);
      }
    }
  });

  it("encodeChunk() compresses under auto exactly when zstd saves at least a sixteenth", () => {
    const fake = (size: number): Zstd => ({
      compress: () => new Uint8Array(size),
      decompress: () => new Uint8Array(),
    });
    const bytes = randomBytes(1600, 5);
    assert.equal(encodeChunk(bytes, { zstd: fake(1500) })[5], 1, "saves 100 bytes = 1/16");
    assert.equal(encodeChunk(bytes, { zstd: fake(1501) })[5], 0, "saves 99 bytes < 1/16");
    assert.equal(encodeChunk(bytes, { codec: "zstd", zstd: fake(1700) })[5], 1);
    assert.equal(encodeChunk(compressibleBytes(65536, 1))[5], 1);
    assert.equal(encodeChunk(randomBytes(65536, 1))[5], 0);
    assert.equal(encodeChunk(randomBytes(65536, 1)).length, 12 + 65536);
  });

  it("encodeChunk() rejects empty and over-1-MiB chunks and unknown codecs", () => {
    assert.throws(() => encodeChunk(new Uint8Array(0)), {
      name: "RangeError",
      message: /0 bytes: a chunk is 1 byte/,
    });
    assert.throws(() => encodeChunk(new Uint8Array(MAX_CHUNK_LENGTH + 1)), RangeError);
    assert.throws(() => encodeChunk(new Uint8Array(1), { codec: "gzip" as "none" }), /Unknown codec "gzip"/);
  });

  it("decodeChunk() rejects any flipped byte, truncation or appended byte, or still returns the exact bytes", async () => {
    let sameBytes = 0;
    await fc.assert(
      fc.asyncProperty(
        chunkBytes(20 * 1024),
        fc.constantFrom(...codecs),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.integer({ min: 0, max: 2 }),
        async (bytes, codec, position, value, kind) => {
          const id = await chunkId(bytes);
          const object = encodeChunk(bytes, { codec });
          const at = position % object.length;
          let bad: Uint8Array;
          if (kind === 0) {
            bad = object.slice();
            bad[at] = (bad[at] as number) ^ value;
          } else if (kind === 1) bad = object.slice(0, at);
          else {
            bad = new Uint8Array(object.length + 1);
            bad.set(object);
            bad[object.length] = value;
          }
          const zstdPayloadFlip = kind === 0 && at >= 12 && object[5] === 1;
          let error: unknown;
          try {
            const decoded = await decodeChunk(id, bad);
            // zstd does not read every bit of a frame (an unused header bit, slack in its tables), so such a
            // flip decodes to the same bytes, which the id check has just verified; nothing else may decode.
            assert.ok(zstdPayloadFlip, "only a flip inside a zstd payload can leave the chunk readable");
            assert.deepEqual(decoded, bytes);
            sameBytes++;
            return;
          } catch (caught) {
            error = caught;
          }
          assert.ok(error instanceof TesseraError, `expected a TesseraError, got ${error}`);
          assert.match(error.message, new RegExp(`^Cannot decode chunk ${idToHex(id)}: `));
          if (kind !== 0 || at < 12) assert.equal(error.code, "CORRUPT_CHUNK", error.message);
          else if (object[5] === 0) assert.equal(error.code, "CHECKSUM_MISMATCH", error.message);
          else assert.ok(error.code === "CORRUPT_CHUNK" || error.code === "CHECKSUM_MISMATCH", error.message);
        },
      ),
      { numRuns: 1500 },
    );
    console.log(`  ${sameBytes} of 1500 corruptions were zstd bits that do not change the decoded bytes`);
  });

  it("decodeChunk() reports a raw chunk under the wrong id as a checksum mismatch naming both ids", async () => {
    const bytes = randomBytes(5000, 9);
    const object = encodeChunk(bytes, { codec: "none" });
    object[12 + 4000] = (object[12 + 4000] as number) ^ 1;
    const id = await chunkId(bytes);
    const other = await chunkId(object.subarray(12));
    await assert.rejects(decodeChunk(id, object), {
      code: "CHECKSUM_MISMATCH",
      message: `Cannot decode chunk ${idToHex(id)}: its bytes hash to ${idToHex(other)}`,
    });
  });

  it("decodeChunk() names the id and the rule each bad header breaks", async () => {
    const id = await chunkId(new Uint8Array([7]));
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(11), /the object is 11 bytes, shorter than the 12-byte header/],
      [
        Uint8Array.of(0x54, 0x53, 0x4d, 0x46, 1, 0, 0, 0, 1, 0, 0, 0, 7),
        /does not start with the magic TSCK/,
      ],
      [
        chunkObject(Uint8Array.of(7), { length: 1, codec: 0, version: 2 }),
        /format version 2 is not supported .*; upgrade it/,
      ],
      [chunkObject(Uint8Array.of(7), { length: 1, codec: 2 }), /unknown codec 2/],
      [
        chunkObject(Uint8Array.of(7), { length: 1, codec: 0, reserved: 1 }),
        /reserved header bytes are not zero/,
      ],
      [
        chunkObject(new Uint8Array(0), { length: 0, codec: 0 }),
        /claims 0 bytes; a chunk is 1 to 1048576 bytes/,
      ],
      [chunkObject(Uint8Array.of(7, 7), { length: 1, codec: 0 }), /the raw payload is 2 bytes, not 1/],
    ];
    for (const [object, message] of cases) {
      await assert.rejects(decodeChunk(id, object), { code: "CORRUPT_CHUNK", message }, String(message));
      await assert.rejects(decodeChunk(id, object), {
        message: new RegExp(`^Cannot decode chunk ${idToHex(id)}: `),
      });
    }
  });

  it("decodeChunk() rejects a 100-byte object claiming 4 GiB before allocating anything for it", async () => {
    const zstd = spyZstd();
    const object = chunkObject(new Uint8Array(88), { length: 0xffffffff });
    await assert.rejects(decodeChunk(new Uint8Array(32), object, { zstd }), {
      code: "CORRUPT_CHUNK",
      message: /the header claims 4294967295 bytes; a chunk is 1 to 1048576 bytes/,
    });
    assert.deepEqual(zstd.calls, [], "nothing was decompressed");
  });

  it("decodeChunk() stops a zstd bomb one byte past the claimed length", async () => {
    const zstd = spyZstd();
    // 32768 blocks of 128 KiB: 4 GiB of output from a 128 KiB object that claims 1 MiB.
    const bomb = chunkObject(rleFrame(0x61, 131072, 32768), { length: MAX_CHUNK_LENGTH });
    await assert.rejects(decodeChunk(new Uint8Array(32), bomb, { zstd }), {
      code: "CORRUPT_CHUNK",
      message: /the zstd payload does not decompress: zstd output exceeds 1048576 bytes/,
    });
    assert.deepEqual(zstd.calls, [MAX_CHUNK_LENGTH]);
    const small = chunkObject(rleFrame(0x61, 1000, 2), { length: 1000 });
    await assert.rejects(decodeChunk(new Uint8Array(32), small), /exceeds 1000 bytes/);
  });

  it("decodeChunk() rejects a frame whose declared size differs without decompressing it", async () => {
    const zstd = spyZstd();
    const object = chunkObject(rleFrame(0x61, 100, 1, { contentSize: 100 }), { length: 99 });
    await assert.rejects(
      decodeChunk(new Uint8Array(32), object, { zstd }),
      /the zstd frame declares 100 bytes, not 99/,
    );
    assert.deepEqual(zstd.calls, []);
  });

  it("decodeChunk() accepts a frame without a content size that holds exactly the chunk", async () => {
    const bytes = new Uint8Array(300000).fill(0x61);
    const object = chunkObject(rleFrame(0x61, 100000, 3), { length: bytes.length });
    assert.deepEqual(await decodeChunk(await chunkId(bytes), object), bytes);
    const short = chunkObject(rleFrame(0x61, 100000, 2), { length: bytes.length });
    await assert.rejects(
      decodeChunk(await chunkId(bytes), short),
      /decompresses to 200000 bytes, not 300000/,
    );
  });

  it("decodeChunk() rejects a payload of more than one zstd frame", async () => {
    const bytes = compressibleBytes(4000, 1);
    const frame = nodeZstd.compress(bytes);
    const two = chunkObject(Uint8Array.of(...frame, ...frame), { length: bytes.length * 2 });
    const id = await chunkId(Uint8Array.of(...bytes, ...bytes));
    await assert.rejects(decodeChunk(id, two), {
      code: "CORRUPT_CHUNK",
      message: new RegExp(`the payload is ${frame.length * 2} bytes but its zstd frame is ${frame.length}`),
    });
  });
});
