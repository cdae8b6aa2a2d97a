import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { decodeChunk } from "../../src/chunk/codec.ts";
import { hexToId } from "../../src/chunk/ids.ts";
import { decompressExactly, decompressPortably, nodeZstd, readZstdFrame } from "../../src/chunk/zstd.ts";
import { rleFrame } from "./_frames.ts";
import { compressibleBytes, randomBytes } from "./_random.ts";

const fixtures = new URL("./fixtures/", import.meta.url);

describe("zstd", () => {
  it("nodeZstd round trips and its frames declare their size and end exactly", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 70000 }), fc.integer(), fc.boolean(), (length, seed, text) => {
        const bytes = text ? compressibleBytes(length, seed) : randomBytes(length, seed);
        const frame = nodeZstd.compress(bytes);
        assert.deepEqual(readZstdFrame(frame), { frameLength: frame.length, contentSize: length });
        assert.deepEqual(nodeZstd.decompress(frame, length), bytes);
        assert.deepEqual(decompressExactly(frame, { length }), bytes);
      }),
      { numRuns: 100 },
    );
  });

  it("nodeZstd.decompress() returns at most maxLength + 1 bytes, else throws", () => {
    const frame = nodeZstd.compress(new Uint8Array(1000));
    assert.equal(nodeZstd.decompress(frame, 999).length, 1000);
    assert.throws(() => nodeZstd.decompress(frame, 998), {
      name: "Error",
      message: "zstd output exceeds 998 bytes",
    });
    assert.throws(() => nodeZstd.decompress(Uint8Array.of(1, 2, 3, 4, 5, 6), 10), /^Error: zstd failed: /);
    assert.throws(() => nodeZstd.decompress(frame, -1), RangeError);
  });

  it("the pure-JS decoder (runtimes without native zstd) reads what nodeZstd writes, and refuses the rest", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 70000 }), fc.integer(), fc.boolean(), (length, seed, text) => {
        const bytes = text ? compressibleBytes(length, seed) : randomBytes(length, seed);
        assert.deepEqual(decompressPortably(nodeZstd.compress(bytes), length), bytes);
      }),
      { numRuns: 50 },
    );
    const frame = nodeZstd.compress(new Uint8Array(1000).fill(7));
    assert.throws(() => decompressPortably(frame, 999), { message: "zstd output exceeds 999 bytes" });
    assert.throws(() => decompressPortably(Uint8Array.of(1, 2, 3, 4, 5, 6), 10), /^Error: zstd failed: /);
    const cut = frame.subarray(0, frame.length - 3);
    assert.throws(() => decompressPortably(cut, 1000), /^Error: zstd failed: /);
    assert.deepEqual(decompressPortably(rleFrame(1, 10, 3), 100), new Uint8Array(30).fill(1));
  });

  it("readZstdFrame() walks hand-built frames and rejects broken ones", () => {
    assert.deepEqual(readZstdFrame(rleFrame(1, 10, 3)), { frameLength: 6 + 12, contentSize: undefined });
    assert.deepEqual(readZstdFrame(rleFrame(1, 10, 3, { contentSize: 30 })), {
      frameLength: 10 + 12,
      contentSize: 30,
    });
    const frame = rleFrame(1, 10, 2);
    assert.throws(() => readZstdFrame(frame.subarray(0, frame.length - 1)), /the zstd frame is truncated/);
    assert.throws(
      () => readZstdFrame(Uint8Array.of(0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0)),
      /does not start with a zstd frame/,
    );
    const reservedBlock = frame.slice();
    reservedBlock[6] = (reservedBlock[6] as number) | 0x06; // block type 3
    assert.throws(() => readZstdFrame(reservedBlock), /reserved type/);
  });

  it("decodeChunk() reads chunk objects written by Deno and by Bun, and a frame without a content size", async () => {
    const expected = compressibleBytes(102400, 1);
    const ids: Record<string, { id: string; length: number }> = JSON.parse(
      readFileSync(new URL("chunks.json", fixtures), "utf8"),
    );
    assert.deepEqual(Object.keys(ids).sort(), ["chunk-bun.bin", "chunk-deno-nosize.bin", "chunk-deno.bin"]);
    await Promise.all(
      Object.entries(ids).map(async ([file, { id, length }]) => {
        const object = new Uint8Array(readFileSync(new URL(file, fixtures)));
        assert.equal(object[5], 1, `${file} is zstd`);
        assert.ok(object.length < length / 16, `${file} is compressed`);
        assert.deepEqual(await decodeChunk(hexToId(id), object), expected, file);
      }),
    );
  });
});
