import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { idToHex, ZERO_ID } from "../../src/chunk/ids.ts";
import { TesseraError } from "../../src/errors.ts";
import { buildChunkList } from "../../src/manifest/build_chunk_list.ts";
import { chunkListIndexIds, expandChunkList } from "../../src/manifest/chunk_list.ts";
import type { ChunkList } from "../../src/manifest/types.ts";
import { randomBytes } from "../chunk/_random.ts";

const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash("sha256").update(bytes).digest());
const ids = (count: number, seed = 0) =>
  Array.from({ length: count }, (_, i) => (i % 3 === 0 ? ZERO_ID : randomBytes(32, seed + i)));

describe("chunk lists", () => {
  it("buildChunkList() lists up to 512 ids inline and indexes more in 16 KiB index chunks (format 1)", () => {
    const inline = buildChunkList(ids(512), { version: 1 });
    assert.equal(inline.list.kind, "inline");
    assert.deepEqual(inline.indexChunks, []);
    const { list, indexChunks } = buildChunkList(ids(1300), { version: 1 });
    assert.ok(list.kind === "indexed");
    assert.equal(list.count, 1300);
    assert.equal(list.fanout, 512);
    assert.deepEqual(indexChunks.map((c) => c.length), [16384, 16384, 276 * 32]);
    assert.deepEqual(list.indexIds, indexChunks.map(sha256));
    assert.deepEqual(chunkListIndexIds(list), list.indexIds);
    assert.deepEqual(chunkListIndexIds(inline.list), []);
    assert.deepEqual(indexChunks[1]?.subarray(0, 32), ids(1300)[512]);
  });

  it("buildChunkList() lists chunks with their locations in format 2, each index chunk naming its packs", async () => {
    const original = ids(1300);
    const pack = (n: number) => new Uint8Array(32).fill(n + 1);
    // Chunks 0..599 in pack 0, the rest in pack 1, zero chunks nowhere.
    const locations = original.map((id, i) =>
      id === ZERO_ID
        ? undefined
        : { pack: pack(i < 600 ? 0 : 1), packLength: 1 << 20, offset: 24 + i * 100, length: 100 }
    );
    const { list, indexChunks } = buildChunkList(original, { locations });
    assert.ok(list.kind === "indexed");
    // 4 bytes of pack count, 36 per pack, 44 per chunk: index chunk 1 spans both packs.
    assert.deepEqual(indexChunks.map((c) => c.length), [
      4 + 36 + 512 * 44,
      4 + 72 + 512 * 44,
      4 + 36 + 276 * 44,
    ]);
    const expanded = await expandChunkList(list, async (_id, k) => indexChunks[k]!, 2);
    assert.deepEqual(expanded.ids, original);
    assert.deepEqual(expanded.locations, locations);
    const inline = buildChunkList(original.slice(0, 10), { locations: locations.slice(0, 10) });
    assert.ok(inline.list.kind === "inline");
    assert.deepEqual(inline.list.locations, locations.slice(0, 10));
    // A located index chunk that lies about its length is refused, naming it.
    await assert.rejects(
      expandChunkList(
        list,
        async (_id, k) => k === 2 ? indexChunks[2]!.subarray(0, 100) : indexChunks[k]!,
        2,
      ),
      { code: "CORRUPT_MANIFEST", message: /index chunk 2 \([0-9a-f]{64}\) is not a located list/ },
    );
  });

  it("expandChunkList() returns the ids buildChunkList() listed, whatever the options", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 3000 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: 6, max: 15 }),
        fc.integer(),
        async (count, inlineMax, fanoutLog, seed) => {
          const original = ids(count, seed);
          const version = (seed & 1) === 0 ? 1 : 2;
          const { list, indexChunks } = buildChunkList(original, {
            inlineMax,
            fanout: 2 ** fanoutLog,
            version,
          });
          assert.equal(list.kind, count <= inlineMax ? "inline" : "indexed");
          const loaded: number[] = [];
          const expanded = await expandChunkList(list, async (id, k) => {
            loaded.push(k);
            assert.deepEqual(id, chunkListIndexIds(list)[k]);
            return indexChunks[k] as Uint8Array;
          }, version);
          assert.deepEqual(expanded.ids, original);
          assert.deepEqual(loaded.sort((a, b) => a - b), indexChunks.map((_, k) => k));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("expandChunkList() rejects an index chunk of the wrong length", async () => {
    const { list, indexChunks } = buildChunkList(ids(1100), { version: 1 });
    const load = (k: number, bytes: Uint8Array) => (_id: Uint8Array, j: number) =>
      Promise.resolve(j === k ? bytes : indexChunks[j] as Uint8Array);
    const id0 = idToHex(chunkListIndexIds(list)[0] as Uint8Array);
    await assert.rejects(expandChunkList(list, load(0, indexChunks[0]?.subarray(32) as Uint8Array)), {
      code: "CORRUPT_MANIFEST",
      message: `Cannot expand a chunk list: index chunk 0 (${id0}) is 16352 bytes, not 16384`,
    });
    await assert.rejects(
      expandChunkList(list, load(2, new Uint8Array(77 * 32))),
      /index chunk 2 .* is 2464 bytes, not 2432/,
    );
    await assert.rejects(
      expandChunkList(list, load(2, new Uint8Array(16384))),
      /index chunk 2 .* is 16384 bytes, not 2432/,
    );
    const short: ChunkList = { kind: "indexed", count: 1100, fanout: 512, indexIds: [ZERO_ID, ZERO_ID] };
    await assert.rejects(expandChunkList(short, () => assert.fail("nothing is loaded")), {
      code: "CORRUPT_MANIFEST",
      message: /2 index chunks cannot hold 1100 ids at 512 each/,
    });
  });

  it("expandChunkList() reads an all-zero index id as zero ids without loading it", async () => {
    const list: ChunkList = { kind: "indexed", count: 100, fanout: 64, indexIds: [ZERO_ID, ZERO_ID] };
    const { ids: expanded } = await expandChunkList(
      list,
      () => assert.fail("a zero index chunk is never loaded"),
    );
    assert.equal(expanded.length, 100);
    assert.ok(expanded.every((id) => id.length === 32 && id.every((b) => b === 0)));
  });

  it("expandChunkList() stops loading after a load fails, and passes the failure on", async () => {
    const { list, indexChunks } = buildChunkList(ids(64 * 200), { fanout: 64, version: 1 });
    let loads = 0;
    const failure = new TesseraError("NOT_FOUND", "index chunk missing");
    await assert.rejects(
      expandChunkList(list, async (_id, k) => {
        loads++;
        await new Promise((resolve) => setTimeout(resolve, 1));
        if (k === 3) throw failure;
        return indexChunks[k] as Uint8Array;
      }),
      (error) => error === failure,
    );
    // 64 load at once: those started before the failure finish, no more start (of 200).
    assert.ok(loads < 100, `${loads} loads`);
  });

  it("buildChunkList() rejects bad ids and options", () => {
    assert.throws(() => buildChunkList([new Uint8Array(31)]), {
      name: "TypeError",
      message: /id of chunk 1/,
    });
    assert.throws(() => buildChunkList([], { fanout: 100 }), { name: "RangeError", message: /fanout 100/ });
    assert.throws(() => buildChunkList([], { fanout: 65536 }), RangeError);
    assert.throws(() => buildChunkList([], { inlineMax: -1 }), /inlineMax -1/);
  });
});
