import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { encodeChunk } from "../../src/chunk/codec.ts";
import { chunkId, idToHex, ZERO_ID } from "../../src/chunk/ids.ts";
import {
  type ChunkCache,
  isChunkCache,
  LayeredChunkSource,
  MemoryChunkCache,
  StoreChunkSource,
} from "../../src/chunk/source.ts";
import { DirectoryChunkCache } from "../../src/chunk/directory_cache.ts";
import { chunkKey } from "../../src/manifest/keys.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import { CountingStore } from "../_helpers/counting.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { rejectsWithCode } from "../_helpers/assert.ts";

async function storedChunk(store: MemoryStore, text: string): Promise<{ id: Uint8Array; bytes: Uint8Array }> {
  const bytes = new TextEncoder().encode(text.repeat(500));
  const id = await chunkId(bytes);
  await store.put(chunkKey(id), encodeChunk(bytes));
  return { id, bytes };
}

describe("StoreChunkSource", () => {
  it("get() returns a stored chunk's bytes, and undefined for a chunk the store lacks", async () => {
    const store = new MemoryStore();
    const x = await storedChunk(store, "tessera ");
    const source = new StoreChunkSource(store);
    assert.equal(source.description, store.description);
    assert.deepEqual(await source.get(x.id), x.bytes);
    assert.equal(await source.get(await chunkId(new Uint8Array([1]))), undefined);
  });

  it("get() rejects the all-zero id without asking the store", async () => {
    const store = new CountingStore(new MemoryStore());
    await assert.rejects(new StoreChunkSource(store).get(ZERO_ID), RangeError);
    assert.equal(store.gets(), 0);
  });

  it("get() rejects a stored object whose bytes are not the chunk's, naming the chunk", async () => {
    const store = new MemoryStore();
    const x = await storedChunk(store, "one ");
    const y = await storedChunk(store, "two ");
    await store.put(chunkKey(x.id), encodeChunk(y.bytes));
    await rejectsWithCode(
      new StoreChunkSource(store).get(x.id),
      "CHECKSUM_MISMATCH",
      new RegExp(idToHex(x.id)),
    );
    await store.put(chunkKey(y.id), new TextEncoder().encode("garbage"));
    await rejectsWithCode(new StoreChunkSource(store).get(y.id), "CORRUPT_CHUNK", new RegExp(idToHex(y.id)));
  });

  it("get() rejects with the abort reason when its signal is aborted", async () => {
    const store = new MemoryStore();
    const x = await storedChunk(store, "abc ");
    await assert.rejects(
      new StoreChunkSource(store).get(x.id, { signal: AbortSignal.abort() }),
      (error: Error) => error.name === "AbortError",
    );
  });
});

describe("LayeredChunkSource", () => {
  let root: string;
  before(async () => {
    root = await makeTempDir("layered");
  });
  after(() => removeDir(root));

  it("puts a chunk found in a later layer into every writable cache before it", async () => {
    const inner = new MemoryStore();
    const x = await storedChunk(inner, "layered ");
    const store = new CountingStore(inner);
    const memory = new MemoryChunkCache({ capacityBytes: 1 << 20 });
    const directory = new DirectoryChunkCache({ directory: join(root, "a") });
    const chunks = new LayeredChunkSource([memory, directory, new StoreChunkSource(store)]);
    assert.equal(chunks.description, `memory cache, then ${directory.description}, then memory`);

    assert.deepEqual(await chunks.get(x.id), x.bytes);
    assert.equal(store.gets(), 1);
    assert.deepEqual(await memory.get(x.id), x.bytes);
    assert.deepEqual(await directory.get(x.id), x.bytes);
    assert.deepEqual(await chunks.get(x.id), x.bytes);
    assert.equal(store.gets(), 1, "the second read stops at the memory cache");

    // A hit in the directory fills the memory cache again, and nothing after it.
    const fresh = new MemoryChunkCache({ capacityBytes: 1 << 20 });
    const again = new LayeredChunkSource([fresh, directory, new StoreChunkSource(store)]);
    assert.deepEqual(await again.get(x.id), x.bytes);
    assert.equal(store.gets(), 1);
    assert.equal(fresh.count, 1);
  });

  it("fills the populate caches, never a read-only layer, and nothing on a miss", async () => {
    const store = new MemoryStore();
    const x = await storedChunk(store, "populate ");
    const readOnlyDir = join(root, "readonly");
    const readOnly = new DirectoryChunkCache({ directory: readOnlyDir, readOnly: true });
    const own = new DirectoryChunkCache({ directory: join(root, "own") });
    const chunks = new LayeredChunkSource([readOnly, new StoreChunkSource(store)], { populate: [own] });
    assert.equal(await chunks.get(await chunkId(new Uint8Array([7]))), undefined);
    await assert.rejects(readdir(join(root, "own")), { code: "ENOENT" });
    assert.deepEqual(await chunks.get(x.id), x.bytes);
    assert.deepEqual(await own.get(x.id), x.bytes);
    await assert.rejects(readdir(readOnlyDir), { code: "ENOENT" });
  });

  it("returns a chunk even when a cache cannot keep it, and reports the failure", async () => {
    const store = new MemoryStore();
    const x = await storedChunk(store, "full disk ");
    const failing: ChunkCache = {
      description: "failing cache",
      get: async () => undefined,
      put: async () => {
        throw new Error("disk full");
      },
    };
    const reported: string[] = [];
    const chunks = new LayeredChunkSource([failing, new StoreChunkSource(store)], {
      onCacheError: (error, cache) => reported.push(`${cache.description}: ${(error as Error).message}`),
    });
    assert.deepEqual(await chunks.get(x.id), x.bytes);
    assert.deepEqual(reported, ["failing cache: disk full"]);
  });

  it("passes errors of a layer through, and needs at least one layer", async () => {
    const store = new MemoryStore();
    const x = await storedChunk(store, "x ");
    await store.put(chunkKey(x.id), new Uint8Array(20));
    const chunks = new LayeredChunkSource([new StoreChunkSource(store)]);
    await rejectsWithCode(chunks.get(x.id), "CORRUPT_CHUNK", new RegExp(idToHex(x.id)));
    assert.throws(() => new LayeredChunkSource([]), TypeError);
    assert.equal(isChunkCache(new StoreChunkSource(store)), false);
    assert.equal(isChunkCache(new MemoryChunkCache({ capacityBytes: 1 })), true);
  });
});
