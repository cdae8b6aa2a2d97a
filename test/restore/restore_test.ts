import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmod, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { encodeChunk } from "../../src/chunk/codec.ts";
import { idsEqual, idToHex, ZERO_ID } from "../../src/chunk/ids.ts";
import {
  type ChunkSource,
  LayeredChunkSource,
  MemoryChunkCache,
  StoreChunkSource,
} from "../../src/chunk/source.ts";
import { DirectoryChunkCache } from "../../src/chunk/directory_cache.ts";
import { chunkKey } from "../../src/manifest/keys.ts";
import { loadLatest } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import { CountingChunkSource, CountingStore } from "../_helpers/counting.ts";
import { makeImage, type Published, publishImage } from "../_helpers/publish.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { assertBytes, rejectsWithCode } from "../_helpers/assert.ts";

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The non-zero chunk ids after chunk 0, each once. */
function storedIds(published: Published): Set<string> {
  return new Set(published.ids.slice(1).filter((id) => !idsEqual(id, ZERO_ID)).map(idToHex));
}

const KiB = 1024;

interface Shape {
  what: string;
  length: number;
  chunkSize: number;
  pageSize?: number;
  zeroChunks?: number[];
  repeatChunks?: number[];
}

const SHAPES: Shape[] = [
  { what: "one page, chunk 0 only", length: 4 * KiB, chunkSize: 64 * KiB },
  { what: "one whole chunk", length: 64 * KiB, chunkSize: 64 * KiB },
  {
    what: "zero chunks and a short last chunk",
    length: 5 * 64 * KiB + 4 * KiB,
    chunkSize: 64 * KiB,
    zeroChunks: [2, 3],
  },
  {
    what: "a zero last chunk",
    length: 3 * 16 * KiB + 512,
    chunkSize: 16 * KiB,
    pageSize: 512,
    zeroChunks: [3],
  },
  {
    what: "every chunk after chunk 0 zero",
    length: 6 * 4 * KiB,
    chunkSize: 4 * KiB,
    zeroChunks: [1, 2, 3, 4, 5],
  },
  { what: "repeated chunks", length: 40 * 4 * KiB, chunkSize: 4 * KiB, repeatChunks: [2, 3, 17, 39] },
  { what: "1 MiB chunks", length: 2 * 1024 * KiB + 64 * KiB, chunkSize: 1024 * KiB, pageSize: 65536 },
  {
    what: "an indexed list of 1300 chunks at 4 KiB with a short last chunk",
    length: 1300 * 4 * KiB + KiB,
    chunkSize: 4 * KiB,
    pageSize: KiB,
    zeroChunks: [5, 600, 601],
  },
];

describe("restoreImage()", () => {
  let dir: string;
  let n = 0;
  const fresh = (name: string) => join(dir, `${++n}-${name}`);

  before(async () => {
    dir = await makeTempDir("restore");
  });
  after(() => removeDir(dir));

  for (const shape of SHAPES) {
    it(`rebuilds an image byte for byte: ${shape.what}`, async () => {
      const store = new MemoryStore();
      const image = makeImage(shape.length, { ...shape, seed: shape.length });
      const published = await publishImage(store, image, {
        name: "shapes",
        sequence: 3,
        chunkSize: shape.chunkSize,
        ...(shape.pageSize ? { pageSize: shape.pageSize } : {}),
      });
      const out = join(fresh("out"), "restored.db");
      await mkdir(join(out, ".."), { recursive: true });
      const progress: [number, number][] = [];
      const result = await restoreImage({
        manifest: published.manifest,
        chunks: new StoreChunkSource(store),
        out,
        concurrency: 3,
        onProgress: (done, total) => progress.push([done, total]),
      });
      const restored = await readFile(out);
      assertBytes(restored, image);
      assert.equal(result.sha256, sha256(image));
      assert.equal(result.imageVerified, true);
      assert.equal(result.bytes, image.length);
      const total = Math.ceil(image.length / shape.chunkSize);
      assert.deepEqual(progress.at(-1), [total, total]);
      assert.ok(progress.every(([done], i) => i === 0 || done === progress[i - 1]![0] + 1));
      const distinct = storedIds(published).size;
      assert.ok(result.chunksFetched >= distinct, `fetched ${result.chunksFetched} of ${distinct}`);
      if (!shape.repeatChunks) assert.equal(result.chunksFetched, distinct);
      if (shape.length > 512 * shape.chunkSize) assert.equal(published.manifest.chunks.kind, "indexed");
      assert.deepEqual(await readdir(join(out, "..")), ["restored.db"], "no temporary file is left");
    });
  }

  it("keeps at most concurrency fetches in flight and 2 × concurrency chunks ahead of the hash", async () => {
    const store = new MemoryStore();
    const image = makeImage(100 * 4 * KiB, { chunkSize: 4 * KiB, seed: 77 });
    const { manifest } = await publishImage(store, image, {
      name: "window",
      sequence: 1,
      chunkSize: 4 * KiB,
    });
    const source = new CountingChunkSource(new StoreChunkSource(store));
    // Chunk 1 stalls until released, so every other chunk piles up behind it.
    let release!: () => void;
    const stalled = new Promise<void>((resolve) => (release = resolve));
    const gated: ChunkSource = {
      description: "gated",
      get: async (id, options) => {
        if (idsEqual(id, firstListedId(manifest))) await stalled;
        return await source.get(id, options);
      },
    };
    const out = fresh("window.db");
    const running = restoreImage({ manifest, chunks: gated, out, concurrency: 4 });
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    // Chunks 2 .. 8 at most: chunk 1 has not been hashed, so nothing past 2 × concurrency may start.
    assert.ok(source.calls <= 7, `${source.calls} chunks fetched while chunk 1 stalled`);
    assert.ok(source.calls >= 3, `only ${source.calls} chunks fetched while chunk 1 stalled`);
    release();
    const result = await running;
    assert.equal(result.sha256, sha256(image));
    assert.ok(source.maxInFlight <= 4, `${source.maxInFlight} fetches at once`);
  });

  it("a warm cache directory serves a second restore without one chunk GET", async () => {
    const store = new CountingStore(new MemoryStore());
    const image = makeImage(700 * 4 * KiB, { chunkSize: 4 * KiB, zeroChunks: [9] });
    const published = await publishImage(store, image, { name: "warm", sequence: 1, chunkSize: 4 * KiB });
    const cacheDir = fresh("cache");
    const layers = () => [
      new DirectoryChunkCache({ directory: cacheDir, numShards: 16, capacity: 2000 }),
      new StoreChunkSource(store),
    ];
    const cold = await restoreImage({
      manifest: published.manifest,
      chunks: new LayeredChunkSource(layers()),
      out: fresh("cold.db"),
    });
    assert.equal(store.gets("chunks/"), storedIds(published).size + published.indexIds.length);
    assert.equal(cold.sha256, sha256(image));
    store.reset();
    const out = fresh("warm.db");
    const warm = await restoreImage({
      manifest: published.manifest,
      chunks: new LayeredChunkSource(layers()),
      out,
    });
    assert.equal(store.gets("chunks/"), 0, "every chunk came from the cache directory");
    assert.equal(warm.sha256, sha256(image));
    assertBytes(await readFile(out), image);
  });

  it("two restores sharing one cache directory both succeed, and a damaged cache file is fetched again", async () => {
    const store = new CountingStore(new MemoryStore());
    const image = makeImage(300 * 4 * KiB, { chunkSize: 4 * KiB, seed: 5 });
    const published = await publishImage(store, image, { name: "shared", sequence: 2, chunkSize: 4 * KiB });
    const cacheDir = fresh("shared-cache");
    const chunks = () =>
      new LayeredChunkSource([
        new MemoryChunkCache({ capacityBytes: 64 * KiB }),
        new DirectoryChunkCache({ directory: cacheDir, numShards: 8, capacity: 400 }),
        new StoreChunkSource(store),
      ]);
    const outs = [fresh("a.db"), fresh("b.db")];
    const results = await Promise.all(
      outs.map((out) =>
        restoreImage({ manifest: published.manifest, chunks: chunks(), out, concurrency: 6 })
      ),
    );
    for (const [i, out] of outs.entries()) {
      assert.equal(results[i]!.sha256, sha256(image));
      assertBytes(await readFile(out), image);
    }

    const cache = new DirectoryChunkCache({ directory: cacheDir, numShards: 8, capacity: 400 });
    const victim = published.ids[42]!;
    const damaged = new Uint8Array(await readFile(cache.pathOf(victim)));
    damaged[damaged.length - 1] = damaged[damaged.length - 1]! ^ 0x55;
    await writeFile(cache.pathOf(victim), damaged);
    store.reset();
    const out = fresh("after-damage.db");
    const result = await restoreImage({ manifest: published.manifest, chunks: chunks(), out });
    assert.equal(result.sha256, sha256(image));
    assert.deepEqual(store.getKeys, [chunkKey(victim)], "only the damaged chunk came from the store");
    assertBytes(await readFile(out), image);
    assert.deepEqual(await cache.get(victim), image.subarray(42 * 4 * KiB, 43 * 4 * KiB));
  });

  describe("on failure leaves the target as it was and no temporary file", () => {
    let store: MemoryStore;
    let published: Published;
    let image: Uint8Array;

    before(async () => {
      store = new MemoryStore();
      image = makeImage(600 * 4 * KiB, { chunkSize: 4 * KiB, seed: 9 });
      published = await publishImage(store, image, { name: "broken", sequence: 12, chunkSize: 4 * KiB });
    });

    async function expectFailure(
      chunks: ChunkSource,
      code: string,
      message: string | RegExp,
      manifest = published.manifest,
    ): Promise<void> {
      for (const existing of [undefined, new TextEncoder().encode("the old database")]) {
        const folder = fresh("failure");
        await mkdir(folder);
        const out = join(folder, "target.db");
        if (existing) await writeFile(out, existing);
        await rejectsWithCode(restoreImage({ manifest, chunks, out }), code, message);
        if (existing) assert.deepEqual(new Uint8Array(await readFile(out)), existing);
        assert.deepEqual(await readdir(folder), existing ? ["target.db"] : []);
      }
    }

    it("a chunk missing from the store fails with NOT_FOUND naming the chunk", async () => {
      const copy = new MemoryStore();
      await copyStore(store, copy);
      const missing = published.ids[321]!;
      await copy.delete(chunkKey(missing));
      await expectFailure(
        new StoreChunkSource(copy),
        "NOT_FOUND",
        `Cannot restore broken seq 12: chunk ${idToHex(missing)} (chunk #321) is missing from memory`,
      );
    });

    it("a chunk whose stored bytes are another chunk's fails with CHECKSUM_MISMATCH naming the chunk", async () => {
      const copy = new MemoryStore();
      await copyStore(store, copy);
      const victim = published.ids[200]!;
      await copy.put(chunkKey(victim), encodeChunk(image.subarray(4 * KiB, 8 * KiB)));
      await expectFailure(new StoreChunkSource(copy), "CHECKSUM_MISMATCH", new RegExp(idToHex(victim)));
      await copy.put(chunkKey(victim), new Uint8Array(50));
      await expectFailure(new StoreChunkSource(copy), "CORRUPT_CHUNK", new RegExp(idToHex(victim)));
    });

    it("a missing index chunk fails with NOT_FOUND naming it", async () => {
      const copy = new MemoryStore();
      await copyStore(store, copy);
      const index = published.indexIds[1]!;
      await copy.delete(chunkKey(index));
      await expectFailure(
        new StoreChunkSource(copy),
        "NOT_FOUND",
        new RegExp(`index chunk ${idToHex(index)}`),
      );
    });

    it("an image whose hash is not the manifest's fails with CHECKSUM_MISMATCH", async () => {
      const manifest = { ...published.manifest, imageSha256: new Uint8Array(32).fill(0xee) };
      await expectFailure(
        new StoreChunkSource(store),
        "CHECKSUM_MISMATCH",
        `Cannot restore broken seq 12: the rebuilt image's SHA-256 is ${
          sha256(image)
        }, but the manifest says ${"ee".repeat(32)}`,
        manifest,
      );
    });

    it("a manifest without the image's hash restores with every chunk checked, and says so", async () => {
      const manifest = { ...published.manifest, imageSha256: new Uint8Array(32) };
      const folder = fresh("no-image-hash");
      await mkdir(folder);
      const out = join(folder, "target.db");
      const result = await restoreImage({ manifest, chunks: new StoreChunkSource(store), out });
      assert.equal(result.imageVerified, false);
      assert.equal(result.sha256, sha256(image));
      assert.equal(sha256(new Uint8Array(await readFile(out))), sha256(image));
    });

    it("an abort mid-restore rejects with the abort reason", async () => {
      for (const existing of [undefined, new TextEncoder().encode("the old database")]) {
        const controller = new AbortController();
        const source = new CountingChunkSource(new StoreChunkSource(store));
        source.onCall = (calls) => {
          if (calls === 50) controller.abort();
        };
        const folder = fresh("abort");
        await mkdir(folder);
        const out = join(folder, "target.db");
        if (existing) await writeFile(out, existing);
        await assert.rejects(
          restoreImage({ manifest: published.manifest, chunks: source, out, signal: controller.signal }),
          (error: Error) => error.name === "AbortError",
        );
        assert.ok(source.calls >= 50 && source.calls < 599, `${source.calls} chunks fetched`);
        assert.equal(source.inFlight, 0, "no fetch runs on after the restore rejected");
        if (existing) assert.deepEqual(new Uint8Array(await readFile(out)), existing);
        assert.deepEqual(await readdir(folder), existing ? ["target.db"] : []);
      }
      const folder = fresh("aborted-early");
      await mkdir(folder);
      await assert.rejects(
        restoreImage({
          manifest: published.manifest,
          chunks: new StoreChunkSource(store),
          out: join(folder, "x.db"),
          signal: AbortSignal.abort(),
        }),
        (error: Error) => error.name === "AbortError",
      );
      assert.deepEqual(await readdir(folder), []);
    });
  });

  it("restores the newest snapshot end to end through loadLatest()", async () => {
    const store = new MemoryStore();
    await publishImage(store, makeImage(8 * 4 * KiB, { chunkSize: 4 * KiB, seed: 1 }), {
      name: "e2e",
      sequence: 1,
      chunkSize: 4 * KiB,
    });
    const newest = makeImage(9 * 4 * KiB, { chunkSize: 4 * KiB, seed: 2 });
    await publishImage(store, newest, { name: "e2e", sequence: 2, chunkSize: 4 * KiB });
    const { manifest } = await loadLatest(store, "e2e");
    const out = fresh("e2e.db");
    await writeFile(out, "an older restore");
    await chmod(out, 0o640);
    const result = await restoreImage({ manifest, chunks: new StoreChunkSource(store), out });
    assert.equal(result.sha256, sha256(newest));
    assertBytes(await readFile(out), newest);
    assert.equal((await stat(out)).mode & 0o777, 0o640, "the replaced file's permission bits are kept");
  });

  it("rejects a concurrency that is not a positive integer", async () => {
    const store = new MemoryStore();
    const { manifest } = await publishImage(store, new Uint8Array(4096).fill(1), {
      name: "args",
      sequence: 1,
      chunkSize: 4096,
    });
    await assert.rejects(
      restoreImage({ manifest, chunks: new StoreChunkSource(store), out: fresh("x.db"), concurrency: 0 }),
      RangeError,
    );
  });
});

function firstListedId(manifest: Published["manifest"]): Uint8Array {
  if (manifest.chunks.kind !== "inline") throw new Error("expected an inline list");
  return manifest.chunks.ids[0]!;
}

async function copyStore(from: MemoryStore, to: MemoryStore): Promise<void> {
  for await (const item of from.list("")) {
    if (item.type !== "object") continue;
    const got = await from.get(item.key);
    if (got.status === "ok") await to.put(item.key, got.body);
  }
}
