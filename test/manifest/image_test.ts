import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { decodeChunk, encodeChunk } from "../../src/chunk/codec.ts";
import { chunkIds, idsEqual, isZeroChunk, splitImage, ZERO_ID } from "../../src/chunk/ids.ts";
import { buildChunkList } from "../../src/manifest/build_chunk_list.ts";
import { chunkListIndexIds, expandChunkList } from "../../src/manifest/chunk_list.ts";
import { decodeManifest, encodeManifest } from "../../src/manifest/codec.ts";
import { chunkKey } from "../../src/manifest/keys.ts";
import type { ChunkId } from "../../src/manifest/types.ts";
import { compressibleBytes, randomBytes } from "../chunk/_random.ts";

const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash("sha256").update(bytes).digest());
type Store = Map<string, Uint8Array>;

interface Layout {
  pageSize: number;
  chunkSize: number;
  inlineMax?: number | undefined;
  fanout?: number;
}

/** Stores `image`'s chunks and index chunks in `store` the way a writer does, and returns its manifest object. */
async function publish(image: Uint8Array, layout: Layout, store: Store, sequence = 1): Promise<Uint8Array> {
  const chunks = splitImage(image, layout.chunkSize);
  const rest = chunks.slice(1);
  const ids = (await chunkIds(rest)).map((id, i) => (isZeroChunk(rest[i] as Uint8Array) ? ZERO_ID : id));
  ids.forEach((id, i) => {
    if (!idsEqual(id, ZERO_ID)) store.set(chunkKey(id), encodeChunk(rest[i] as Uint8Array));
  });
  const options = {
    ...(layout.inlineMax === undefined ? {} : { inlineMax: layout.inlineMax }),
    fanout: layout.fanout ?? 512,
    // Format 1: every chunk its own object (format 2's packs go through the write pipeline's tests).
    version: 1 as const,
  };
  const { list, indexChunks } = buildChunkList(ids, options);
  chunkListIndexIds(list).forEach((id, k) =>
    store.set(chunkKey(id), encodeChunk(indexChunks[k] as Uint8Array))
  );
  return await encodeManifest({
    identity: { name: "app", hostname: "", sourcePath: "/srv/app.db" },
    sequence,
    createdMs: 0,
    sourceMtimeMs: 0,
    pageSize: layout.pageSize,
    imageLength: image.length,
    chunkSize: layout.chunkSize,
    imageSha256: sha256(image),
    chunk0: chunks[0] ?? new Uint8Array(0),
    chunks: list,
  });
}

/** Rebuilds the image a manifest object names from `store`, checking every chunk and the image's SHA-256. */
async function restore(object: Uint8Array, store: Store): Promise<Uint8Array> {
  const m = await decodeManifest(object);
  const get = async (id: ChunkId) => {
    const stored = store.get(chunkKey(id));
    assert.ok(stored, `chunk ${chunkKey(id)} is in the store`);
    return await decodeChunk(id, stored);
  };
  const { ids } = await expandChunkList(m.chunks, get, m.version ?? 1);
  const image = new Uint8Array(m.imageLength);
  image.set(m.chunk0);
  await Promise.all(ids.map(async (id, i) => {
    const at = (i + 1) * m.chunkSize;
    const length = Math.min(m.chunkSize, m.imageLength - at);
    if (idsEqual(id, ZERO_ID)) return;
    const bytes = await get(id);
    assert.equal(bytes.length, length);
    image.set(bytes, at);
  }));
  assert.deepEqual(sha256(image), m.imageSha256);
  return image;
}

type Page = { kind: "zero" } | { kind: "random"; seed: number } | { kind: "text"; seed: number } | {
  kind: "copy";
  of: number;
};

function buildImage(pageSize: number, pages: Page[]): Uint8Array {
  const image = new Uint8Array(pageSize * pages.length);
  pages.forEach((page, i) => {
    const at = i * pageSize;
    if (page.kind === "random") image.set(randomBytes(pageSize, page.seed), at);
    else if (page.kind === "text") image.set(compressibleBytes(pageSize, page.seed), at);
    else if (page.kind === "copy" && i > 0) {
      image.copyWithin(at, (page.of % i) * pageSize, (page.of % i + 1) * pageSize);
    }
  });
  return image;
}

const pageArb: fc.Arbitrary<Page> = fc.oneof(
  { arbitrary: fc.constant({ kind: "zero" as const }), weight: 3 },
  fc.record({ kind: fc.constant("random" as const), seed: fc.integer() }, { noNullPrototype: true }),
  fc.record({ kind: fc.constant("text" as const), seed: fc.integer() }, { noNullPrototype: true }),
  fc.record({ kind: fc.constant("copy" as const), of: fc.nat() }, { noNullPrototype: true }),
);

describe("images through chunks and manifests", () => {
  it("an image restored from its manifest and chunks has the same bytes and SHA-256", async () => {
    const layoutArb = fc.record({
      pageLog: fc.integer({ min: 9, max: 13 }),
      chunkLog: fc.integer({ min: 12, max: 15 }),
      inlineMax: fc.option(fc.integer({ min: 0, max: 8 }), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(
        layoutArb,
        fc.array(pageArb, { maxLength: 160, size: "max" }),
        async ({ pageLog, chunkLog, inlineMax }, pages) => {
          const pageSize = 2 ** pageLog;
          const layout = { pageSize, chunkSize: 2 ** Math.max(pageLog, chunkLog), inlineMax, fanout: 64 };
          const image = buildImage(pageSize, pages);
          const store: Store = new Map();
          const restored = await restore(await publish(image, layout, store), store);
          assert.deepEqual(restored, image);
          assert.deepEqual(sha256(restored), sha256(image));
        },
      ),
      { numRuns: 80 },
    );
  });

  it("empty, one-page, one-chunk and all-zero images round trip", async () => {
    const layout = { pageSize: 4096, chunkSize: 65536 };
    const images = [
      new Uint8Array(0),
      randomBytes(4096, 1),
      randomBytes(65536, 2),
      new Uint8Array(65536 * 3 + 4096),
      buildImage(4096, [{ kind: "random", seed: 1 }, ...Array<Page>(40).fill({ kind: "zero" }), {
        kind: "text",
        seed: 2,
      }]),
    ];
    for (const image of images) {
      const store: Store = new Map();
      assert.deepEqual(await restore(await publish(image, layout, store), store), image);
      assert.ok([...store.values()].every((o) => o.length > 12), "no chunk object is empty");
      if (image.length <= 65536 || image.subarray(65536).every((b) => b === 0)) assert.equal(store.size, 0);
    }
  });

  it("a one-chunk change to a sparse 1 GiB image uploads at most 64 KiB beyond chunk 0", async () => {
    const chunkSize = 65536;
    const total = 2 ** 30 / chunkSize; // 16384 chunks; the image itself is never built
    const chunk0 = randomBytes(chunkSize, 1);
    // Chunks 1-2999 hold data (plus a few scattered ones); the rest of the file is zeros.
    const base: ChunkId[] = Array.from(
      { length: total - 1 },
      (_, i) => i < 2999 || i % 1000 === 500 ? randomBytes(32, i + 1) : ZERO_ID,
    );
    const manifest = async (ids: ChunkId[], store: Set<string>, sequence: number) => {
      const { list, indexChunks } = buildChunkList(ids);
      let indexBytes = 0;
      let indexObjects = 0;
      chunkListIndexIds(list).forEach((id, k) => {
        const key = chunkKey(id);
        if (store.has(key)) return;
        store.add(key);
        indexBytes += encodeChunk(indexChunks[k] as Uint8Array).length;
        indexObjects++;
      });
      const object = await encodeManifest({
        identity: { name: "app", hostname: "", sourcePath: "" },
        sequence,
        createdMs: 0,
        sourceMtimeMs: 0,
        pageSize: 4096,
        imageLength: 2 ** 30,
        chunkSize,
        imageSha256: randomBytes(32, sequence),
        chunk0,
        chunks: list,
      });
      return { object, indexBytes, indexObjects, indexCount: chunkListIndexIds(list).length };
    };
    for (const [label, changed] of [["a data chunk", 1234], ["a zero chunk", 12345]] as const) {
      const store = new Set<string>();
      const first = await manifest(base, store, 1);
      assert.equal(first.indexCount, 32);
      const ids = base.slice();
      ids[changed - 1] = randomBytes(32, -changed);
      const second = await manifest(ids, store, 2);
      const beyondChunk0 = second.object.length - chunk0.length + second.indexBytes;
      const report =
        `changing ${label}: manifest ${second.object.length} bytes (chunk 0: ${chunk0.length}), ` +
        `${second.indexObjects} new index chunk of ${second.indexBytes} bytes; ${beyondChunk0} bytes beyond chunk 0`;
      console.log(`  ${report}`);
      assert.equal(second.indexObjects, 1);
      assert.ok(second.object.length - chunk0.length < 2048, "the manifest is about 1 KiB plus chunk 0");
      assert.ok(beyondChunk0 <= 65536, report);
    }
  });
});
