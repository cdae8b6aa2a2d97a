import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { mkdir, readdir, readFile, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodeChunk } from "../../src/chunk/codec.ts";
import { idToHex } from "../../src/chunk/ids.ts";
import { MemoryChunkCache } from "../../src/chunk/source.ts";
import { DirectoryChunkCache } from "../../src/chunk/directory_cache.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { CACHE_CASES, type CacheSuiteTarget, noiseChunk as chunk } from "./_cache_suite.ts";

/** Every chunk file under a cache directory, as `shard/name`. */
async function cacheFiles(directory: string): Promise<string[]> {
  const files: string[] = [];
  let shards: string[];
  try {
    shards = await readdir(directory);
  } catch {
    return [];
  }
  for (const shard of shards) {
    for (const name of await readdir(join(directory, shard))) files.push(`${shard}/${name}`);
  }
  return files.sort();
}

describe("MemoryChunkCache", () => {
  it("keeps at most capacityBytes and drops the least recently used chunk first", async () => {
    const cache = new MemoryChunkCache({ capacityBytes: 10_000 });
    const [a, b, c, d] = await Promise.all([1, 2, 3, 4].map((seed) => chunk(3000, seed)));
    for (const x of [a!, b!, c!]) await cache.put(x.id, x.bytes);
    assert.equal(cache.sizeBytes, 9000);
    assert.ok(await cache.get(a!.id), "a is held");
    await cache.put(d!.id, d!.bytes);
    assert.equal(cache.sizeBytes, 9000);
    assert.equal(cache.count, 3);
    assert.equal(await cache.get(b!.id), undefined, "b was the least recently used");
    for (const x of [a!, c!, d!]) assert.deepEqual(await cache.get(x.id), x.bytes);
  });

  it("never holds more than its capacity, whatever the order of puts and gets", async () => {
    const cache = new MemoryChunkCache({ capacityBytes: 50_000 });
    const chunks = await Promise.all(Array.from({ length: 60 }, (_, i) => chunk(1000 + 137 * i, i + 1)));
    for (let round = 0; round < 200; round++) {
      const x = chunks[(round * 7) % chunks.length]!;
      if (round % 3 === 0) await cache.get(x.id);
      else await cache.put(x.id, x.bytes);
      assert.ok(cache.sizeBytes <= 50_000, `holds ${cache.sizeBytes} bytes after round ${round}`);
    }
    let held = 0;
    for (const x of chunks) {
      const got = await cache.get(x.id);
      if (got) {
        assert.deepEqual(got, x.bytes);
        held += got.length;
      }
    }
    assert.equal(held, cache.sizeBytes);
  });

  it("does not keep a chunk larger than its capacity, and counts a chunk put twice once", async () => {
    const cache = new MemoryChunkCache({ capacityBytes: 4096 });
    const big = await chunk(5000, 1);
    const small = await chunk(4000, 2);
    await cache.put(big.id, big.bytes);
    assert.equal(cache.sizeBytes, 0);
    await cache.put(small.id, small.bytes);
    await cache.put(small.id, small.bytes);
    assert.equal(cache.sizeBytes, 4000);
    assert.equal(cache.count, 1);
  });

  it("hands out copies, so no caller can change what another reads", async () => {
    const cache = new MemoryChunkCache({ capacityBytes: 1 << 20 });
    const x = await chunk(4096, 9);
    const original = x.bytes.slice();
    // A Node Buffer's slice() shares memory: the cache must copy it all the same.
    const input = Buffer.from(x.bytes);
    await cache.put(x.id, input);
    input.fill(0);
    const first = await cache.get(x.id);
    first!.fill(1);
    assert.deepEqual(await cache.get(x.id), original);
  });

  it("rejects a capacity that is not a non-negative integer", () => {
    assert.throws(() => new MemoryChunkCache({ capacityBytes: -1 }), RangeError);
    assert.throws(() => new MemoryChunkCache({ capacityBytes: 1.5 }), RangeError);
  });
});

describe("DirectoryChunkCache", () => {
  let root: string;
  let n = 0;
  const freshDir = () => join(root, `cache-${++n}`);

  before(async () => {
    root = await makeTempDir("chunk-cache");
  });
  after(() => removeDir(root));

  it("stores each chunk as a verified chunk object at <directory>/<shard>/<id>", async () => {
    const directory = freshDir();
    const cache = new DirectoryChunkCache({ directory, numShards: 16 });
    const x = await chunk(8192, 1);
    assert.equal(await cache.get(x.id), undefined);
    await cache.put(x.id, x.bytes);
    const hex = idToHex(x.id);
    const shard = (parseInt(hex.slice(0, 8), 16) % 16).toString(16).padStart(2, "0");
    assert.equal(cache.pathOf(x.id), join(directory, shard, hex));
    assert.deepEqual(await cacheFiles(directory), [`${shard}/${hex}`]);
    const object = await readFile(cache.pathOf(x.id));
    assert.equal(new TextDecoder().decode(object.subarray(0, 4)), "TSCK");
    assert.deepEqual(await decodeChunk(x.id, new Uint8Array(object)), x.bytes);
    assert.deepEqual(await cache.get(x.id), x.bytes);
  });

  it("names shards with four hex digits when there are more than 256", async () => {
    const directory = freshDir();
    const cache = new DirectoryChunkCache({ directory, numShards: 1000, capacity: 100_000 });
    const x = await chunk(100, 2);
    await cache.put(x.id, x.bytes);
    const hex = idToHex(x.id);
    const shard = (parseInt(hex.slice(0, 8), 16) % 1000).toString(16).padStart(4, "0");
    assert.deepEqual(await cacheFiles(directory), [`${shard}/${hex}`]);
  });

  it("keeps at most capacity files, and always the one just written", async () => {
    const directory = freshDir();
    const cache = new DirectoryChunkCache({ directory, numShards: 4, capacity: 8 });
    const chunks = await Promise.all(Array.from({ length: 40 }, (_, i) => chunk(512, i + 1)));
    for (const x of chunks) {
      await cache.put(x.id, x.bytes);
      const files = await cacheFiles(directory);
      assert.ok(files.length <= 8, `${files.length} files after a put`);
      for (const shard of new Set(files.map((f) => f.split("/")[0]))) {
        assert.ok(files.filter((f) => f.startsWith(`${shard}/`)).length <= 2, `shard ${shard} holds over 2`);
      }
      assert.deepEqual(await cache.get(x.id), x.bytes);
    }
    assert.ok((await cacheFiles(directory)).length >= 4, "eviction keeps each shard's share");
  });

  it("evicts the least recently used file: a hit refreshes a file's time", async () => {
    const directory = freshDir();
    const cache = new DirectoryChunkCache({ directory, numShards: 1, capacity: 3 });
    const [a, b, c, d] = await Promise.all([1, 2, 3, 4].map((seed) => chunk(256, seed)));
    for (const x of [a!, b!, c!]) await cache.put(x.id, x.bytes);
    // Times far apart, so the order does not depend on the filesystem's timestamp resolution.
    const base = Date.now() / 1000 - 3600;
    for (const [i, x] of [a!, b!, c!].entries()) await utimes(cache.pathOf(x.id), base + i, base + i);
    assert.deepEqual(await cache.get(a!.id), a!.bytes);
    await cache.put(d!.id, d!.bytes);
    assert.equal(await cache.get(b!.id), undefined, "b was the least recently used");
    for (const x of [a!, c!, d!]) assert.deepEqual(await cache.get(x.id), x.bytes);
  });

  it("deletes a damaged file and reads it as a miss, never serving it", async () => {
    const directory = freshDir();
    const cache = new DirectoryChunkCache({ directory });
    const x = await chunk(4096, 5);
    const y = await chunk(4096, 6);
    await cache.put(x.id, x.bytes);
    await cache.put(y.id, y.bytes);
    const flipped = new Uint8Array(await readFile(cache.pathOf(x.id)));
    flipped[100] = flipped[100]! ^ 0xff;
    await writeFile(cache.pathOf(x.id), flipped);
    await writeFile(cache.pathOf(y.id), "not a chunk");
    assert.equal(await cache.get(x.id), undefined);
    assert.equal(await cache.get(y.id), undefined);
    await assert.rejects(stat(cache.pathOf(x.id)), { code: "ENOENT" });
    await assert.rejects(stat(cache.pathOf(y.id)), { code: "ENOENT" });
    await cache.put(x.id, x.bytes);
    assert.deepEqual(await cache.get(x.id), x.bytes);
  });

  it("read-only: never writes, touches, evicts or deletes", async () => {
    const directory = freshDir();
    const writer = new DirectoryChunkCache({ directory, numShards: 1, capacity: 10 });
    const reader = new DirectoryChunkCache({ directory, numShards: 1, capacity: 1, readOnly: true });
    const [x, y, z] = await Promise.all([1, 2, 3].map((seed) => chunk(1024, seed)));
    await writer.put(x!.id, x!.bytes);
    await writer.put(y!.id, y!.bytes);
    const old = Date.now() / 1000 - 3600;
    await utimes(writer.pathOf(x!.id), old, old);
    await writeFile(writer.pathOf(y!.id), "damaged");
    const before = await cacheFiles(directory);
    assert.deepEqual(await reader.get(x!.id), x!.bytes);
    assert.equal(await reader.get(y!.id), undefined);
    await reader.put(z!.id, z!.bytes);
    assert.deepEqual(await cacheFiles(directory), before);
    assert.equal(Math.round((await stat(writer.pathOf(x!.id))).mtimeMs / 1000), Math.round(old));
    assert.ok(reader.description.includes("read-only"));
  });

  it("survives files and shards vanishing under it, as when another process evicts", async () => {
    const directory = freshDir();
    const caches = [1, 2, 3].map(() => new DirectoryChunkCache({ directory, numShards: 2, capacity: 6 }));
    const chunks = await Promise.all(Array.from({ length: 30 }, (_, i) => chunk(700, i + 100)));
    const work: Promise<unknown>[] = [];
    for (const [i, x] of chunks.entries()) {
      for (const cache of caches) {
        work.push(cache.put(x.id, x.bytes));
        work.push(cache.get(chunks[(i * 5) % chunks.length]!.id));
      }
      // The remover itself may lose a race with a writer (ENOTEMPTY): only the caches must not fail.
      if (i % 7 === 3) work.push(removeDir(join(directory, "00")).catch(() => {}));
    }
    await Promise.all(work);
    for (const x of chunks) {
      const got = await caches[0]!.get(x.id);
      if (got) assert.deepEqual(got, x.bytes);
    }
    await caches[0]!.put(chunks[0]!.id, chunks[0]!.bytes);
    await caches[0]!.put(chunks[1]!.id, chunks[1]!.bytes);
    assert.ok((await cacheFiles(directory)).filter((f) => !f.includes(".tessera-")).length <= 6);
  });

  it("removes temporary files a dead writer left behind, but not fresh ones", async () => {
    const directory = freshDir();
    const cache = new DirectoryChunkCache({ directory, numShards: 1 });
    await mkdir(join(directory, "00"), { recursive: true });
    const stale = join(directory, "00", ".tessera-dead.tmp");
    const fresh = join(directory, "00", ".tessera-live.tmp");
    await writeFile(stale, "partial");
    await writeFile(fresh, "partial");
    const old = Date.now() / 1000 - 3600;
    await utimes(stale, old, old);
    const x = await chunk(100, 1);
    await cache.put(x.id, x.bytes);
    assert.deepEqual(await readdir(join(directory, "00")).then((names) => names.sort()), [
      ".tessera-live.tmp",
      idToHex(x.id),
    ]);
  });

  it("rejects nonsense options", () => {
    assert.throws(() => new DirectoryChunkCache({ directory: "" }), TypeError);
    assert.throws(() => new DirectoryChunkCache({ directory: "x", numShards: 0 }), RangeError);
    assert.throws(() => new DirectoryChunkCache({ directory: "x", numShards: 70000 }), RangeError);
    assert.throws(() => new DirectoryChunkCache({ directory: "x", capacity: 0 }), RangeError);
  });
});

describe("DirectoryChunkCache (the persistent chunk cache suite)", () => {
  let root: string;
  let n = 0;

  before(async () => {
    root = await makeTempDir("chunk-cache-suite");
  });
  after(() => removeDir(root));

  // One shard, so a capacity of n files is exactly n files and eviction order is the whole cache's.
  const pathOf = (location: string, id: Uint8Array) =>
    new DirectoryChunkCache({ directory: location, numShards: 1 }).pathOf(id);
  const target: CacheSuiteTarget = {
    location: async () => join(root, `cache-${++n}`),
    open: (location, room) =>
      new DirectoryChunkCache({ directory: location, numShards: 1, capacity: room.chunks }),
    damage: (location, id, bytes) => writeFile(pathOf(location, id), bytes),
    remove: (location, id) => unlink(pathOf(location, id)),
    async held(location) {
      const ids = (await cacheFiles(location)).map((f) => f.split("/")[1]!).filter((f) =>
        /^[0-9a-f]{64}$/.test(f)
      );
      let bytes = 0;
      for (const id of ids) bytes += (await stat(join(location, "00", id)).catch(() => ({ size: 0 }))).size;
      return { ids: ids.sort(), bytes };
    },
    badOptions: [
      {
        what: "an empty directory",
        make: () => new DirectoryChunkCache({ directory: "" }),
        error: TypeError,
      },
      {
        what: "no shards",
        make: () => new DirectoryChunkCache({ directory: "x", numShards: 0 }),
        error: RangeError,
      },
      {
        what: "a capacity of 0",
        make: () => new DirectoryChunkCache({ directory: "x", capacity: 0 }),
        error: RangeError,
      },
      {
        what: "a fractional capacity",
        make: () => new DirectoryChunkCache({ directory: "x", capacity: 2.5 }),
        error: RangeError,
      },
    ],
    // File times order uses: let the clock move past the file system's timestamp resolution.
    tick: () => new Promise((resolve) => setTimeout(resolve, 20)),
  };

  for (const { name, run } of CACHE_CASES) it(name, () => run(target));
});
