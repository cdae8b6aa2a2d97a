/**
 * The browser side of `opfs_cache_test.ts`, bundled for chromium: the chunk cache suite against
 * {@linkcode OpfsChunkCache} and the checks only OPFS has, run on a page and, with this same module loaded
 * as a module worker, in a dedicated worker. A page gets `globalThis.opfsCacheTests`; a worker answers
 * messages. Imported anywhere else (the test names its cases from here), it installs nothing.
 *
 * @module
 */

import { CHUNK_HEADER_LENGTH, encodeChunk, MAX_CHUNK_LENGTH } from "../../src/chunk/codec.ts";
import { idToHex } from "../../src/chunk/ids.ts";
import { OpfsChunkCache, type OpfsDirectoryHandle, type OpfsFileHandle } from "../../src/chunk/opfs_cache.ts";
import {
  CACHE_CASES,
  type CacheCase,
  type CacheSuiteTarget,
  check,
  checkBytes,
  noiseChunk,
} from "../chunk/_cache_suite.ts";

/** Where a case runs. */
export type Where = "page" | "worker";

/** How a case went: `error` is the failure's message and stack. */
export interface CaseResult {
  name: string;
  error?: string;
}

/** What one tab of the two-tab test did. */
export interface ChurnResult {
  wrong: string[];
  /** The most bytes of chunk files seen, each time between two changes (under the cache's lock). */
  mostBytes: number;
  hits: number;
  puts: number;
  evictions: number;
}

/** What a page offers the test. */
export interface OpfsCacheTests {
  run(name: string, where: Where): Promise<CaseResult>;
  putChunks(location: string, seeds: number[]): Promise<void>;
  readChunks(location: string, seeds: number[]): Promise<{ hits: number; wrong: string[] }>;
  churn(
    options: { location: string; seed: number; rounds: number; capacityChunks: number },
  ): Promise<ChurnResult>;
}

const SIZE = 1024;
const ID_FILE = /^[0-9a-f]{64}$/;
const opfsRoot = () =>
  (globalThis as unknown as { navigator: { storage: { getDirectory(): Promise<OpfsDirectoryHandle> } } })
    .navigator.storage.getDirectory();
interface Locks {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}
const locks = () => (globalThis as unknown as { navigator: { locks: Locks } }).navigator.locks;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The directory every test location is made in. */
async function testRoot(): Promise<OpfsDirectoryHandle> {
  return await (await opfsRoot()).getDirectoryHandle("tessera-tests", { create: true });
}

let made = 0;
async function newLocation(): Promise<string> {
  return `cache-${Date.now().toString(36)}-${++made}-${Math.random().toString(36).slice(2, 8)}`;
}

async function locationDir(location: string): Promise<OpfsDirectoryHandle> {
  return await (await testRoot()).getDirectoryHandle(location, { create: true });
}

async function writeRaw(dir: OpfsDirectoryHandle, name: string, bytes: Uint8Array): Promise<void> {
  const writable = await (await dir.getFileHandle(name, { create: true })).createWritable();
  await writable.write(bytes);
  await writable.close();
}

async function fileText(dir: OpfsDirectoryHandle, name: string): Promise<string> {
  const bytes = new Uint8Array(await (await (await dir.getFileHandle(name)).getFile()).arrayBuffer());
  return bytes.join();
}

async function heldIn(dir: OpfsDirectoryHandle): Promise<{ ids: string[]; bytes: number }> {
  const ids: string[] = [];
  let bytes = 0;
  for await (const name of dir.keys()) {
    if (!ID_FILE.test(name)) continue;
    const size = await dir.getFileHandle(name).then((f) => f.getFile()).then((f) => f.size, () => undefined);
    if (size === undefined) continue;
    ids.push(name);
    bytes += size;
  }
  return { ids: ids.sort(), bytes };
}

const roomBytes = (chunks: number, chunkSize = SIZE) => chunks * (chunkSize + CHUNK_HEADER_LENGTH);

const opfsTarget: CacheSuiteTarget = {
  location: newLocation,
  open: async (location, room) =>
    new OpfsChunkCache({
      root: await testRoot(),
      directory: location,
      capacityBytes: roomBytes(room.chunks, room.chunkSize),
    }),
  damage: async (location, id, bytes) => await writeRaw(await locationDir(location), idToHex(id), bytes),
  remove: async (location, id) => await (await locationDir(location)).removeEntry(idToHex(id)),
  held: async (location) => await heldIn(await locationDir(location)),
  badOptions: [
    { what: "an empty directory", make: () => new OpfsChunkCache({ directory: "" }), error: TypeError },
    { what: "a directory path", make: () => new OpfsChunkCache({ directory: "a/b" }), error: TypeError },
    { what: 'the directory ".."', make: () => new OpfsChunkCache({ directory: ".." }), error: TypeError },
    { what: "a capacity of 0", make: () => new OpfsChunkCache({ capacityBytes: 0 }), error: RangeError },
    { what: "a negative capacity", make: () => new OpfsChunkCache({ capacityBytes: -5 }), error: RangeError },
    {
      what: "a fractional capacity",
      make: () => new OpfsChunkCache({ capacityBytes: 1.5 }),
      error: RangeError,
    },
    {
      what: "a root that is no directory",
      make: () => new OpfsChunkCache({ root: {} as OpfsDirectoryHandle }),
      error: TypeError,
    },
    { what: "null options", make: () => new OpfsChunkCache(null as never), error: TypeError },
  ],
};

async function opfsCache(
  location: string,
  chunks: number,
  root?: OpfsDirectoryHandle,
  chunkSize = SIZE,
): Promise<OpfsChunkCache> {
  return new OpfsChunkCache({
    root: root ?? await testRoot(),
    directory: location,
    capacityBytes: roomBytes(chunks, chunkSize),
  });
}

/** What {@linkcode wrapRoot} changes of the handles it wraps. */
interface Wrapping {
  /** The file handle the cache gets for `name`. */
  file?(name: string, handle: OpfsFileHandle): OpfsFileHandle;
  /** Called on each listing of a directory. */
  listed?(): void;
}

/** `real` and every handle got through it, with the changes of `wrapping`. */
function wrapRoot(real: OpfsDirectoryHandle, wrapping: Wrapping): OpfsDirectoryHandle {
  const dir = (handle: OpfsDirectoryHandle): OpfsDirectoryHandle => ({
    name: handle.name,
    getDirectoryHandle: async (name, options) => dir(await handle.getDirectoryHandle(name, options)),
    getFileHandle: async (name, options) => {
      const got = await handle.getFileHandle(name, options);
      return wrapping.file ? wrapping.file(name, got) : got;
    },
    removeEntry: (name) => handle.removeEntry(name),
    keys: () => {
      wrapping.listed?.();
      return handle.keys();
    },
  });
  return dir(real);
}

/** Writes the quota refuses next, counted down as they are refused. */
interface Refusals {
  /** Writes of chunk files. */
  chunks: number;
  /** Writes of the index file. */
  index: number;
  /** Opening any file for writing (`createWritable`). */
  opens: number;
}

/**
 * `real`, but writes fail as a full disk's would, as `refusals` says. As chromium's does, a writer's
 * `abort()` resolves before the browser lets go of the file (a moment later), so a file deleted at once
 * is still held.
 */
function quotaRoot(real: OpfsDirectoryHandle, refusals: Partial<Refusals>): OpfsDirectoryHandle {
  const refuse = (what: keyof Refusals) => {
    if ((refusals[what] ?? 0) <= 0) return;
    refusals[what]!--;
    throw new DOMException("The origin's quota is used up", "QuotaExceededError");
  };
  return wrapRoot(real, {
    file: (name, handle) => ({
      getFile: () => handle.getFile(),
      async createWritable() {
        refuse("opens");
        const writable = await handle.createWritable();
        return {
          async write(data) {
            refuse(ID_FILE.test(name) ? "chunks" : "index");
            await writable.write(data);
          },
          close: () => writable.close(),
          abort: (reason) => {
            setTimeout(() => void writable.abort(reason).catch(() => {}), 50);
            return Promise.resolve();
          },
        };
      },
    }),
  });
}

/** Holds `cache`'s lock, as another tab would, until `release()`. */
async function holdLock(lockName: string): Promise<{ release(): Promise<void> }> {
  let release = () => {};
  let granted = () => {};
  const got = new Promise<void>((resolve) => (granted = resolve));
  const held = locks().request(lockName, () => {
    granted();
    return new Promise<void>((resolve) => (release = resolve));
  });
  await got;
  return {
    release: async () => {
      release();
      await held;
    },
  };
}

async function until(what: string, condition: () => boolean | Promise<boolean>): Promise<void> {
  for (let waited = 0; !(await condition()); waited += 50) {
    check(waited < 20_000, `${what} did not happen within 20 s`);
    await sleep(50);
  }
}

async function hasFile(location: string, id: Uint8Array): Promise<boolean> {
  return (await heldIn(await locationDir(location))).ids.includes(idToHex(id));
}

/** What only the OPFS cache does; run on a page and in a worker like the suite. */
export const OPFS_CASES: readonly CacheCase[] = [
  {
    name: "OpfsChunkCache.available() is true and the cache opens",
    async run() {
      check(OpfsChunkCache.available(), "available() is false");
      const cache = new OpfsChunkCache({ directory: `default-${await newLocation()}` });
      check(await cache.ready(), `ready() is false: ${cache.disabledReason}`);
      check(cache.disabledReason === undefined, `disabled: ${cache.disabledReason}`);
      check(cache.capacityBytes === 256 * 1024 * 1024, `default capacity ${cache.capacityBytes}`);
      await (await opfsRoot()).removeEntry(cache.directory);
    },
  },
  {
    name: "stats() counts hits, misses, puts, evictions and damaged files, and usage() what is held",
    async run() {
      const location = await newLocation();
      const cache = await opfsCache(location, 2);
      const [x, y, z] = await Promise.all([1, 2, 3].map((seed) => noiseChunk(SIZE, seed)));
      for (const c of [x!, y!, z!]) {
        await cache.put(c.id, c.bytes);
        await cache.settled();
      }
      checkBytes(await cache.get(z!.id), z!.bytes, "z");
      check((await cache.get(x!.id)) === undefined, "x was kept past the capacity");
      await writeRaw(await locationDir(location), idToHex(y!.id), new Uint8Array([1, 2, 3]));
      check((await cache.get(y!.id)) === undefined, "a damaged y was served");
      await cache.settled();
      const { lastError: _, ...counts } = cache.stats();
      const expected = { hits: 1, misses: 2, puts: 3, evictions: 1, damaged: 1, dropped: 0, lockTimeouts: 0 };
      check(JSON.stringify(counts) === JSON.stringify(expected), `stats ${JSON.stringify(counts)}`);
      const usage = await cache.usage();
      check(usage.chunks === 1 && usage.bytes === roomBytes(1), `usage ${JSON.stringify(usage)}`);
    },
  },
  {
    name: "an empty chunk file (a write under way) reads as a miss and is not deleted as damaged",
    async run() {
      const location = await newLocation();
      const cache = await opfsCache(location, 4);
      const x = await noiseChunk(SIZE, 5);
      const dir = await locationDir(location);
      await dir.getFileHandle(idToHex(x.id), { create: true });
      check((await cache.get(x.id)) === undefined, "an empty file was a hit");
      check((await heldIn(dir)).ids.includes(idToHex(x.id)), "the empty file was deleted by a read");
      check(cache.stats().damaged === 0, "an empty file counted as damaged");
      await cache.put(x.id, x.bytes);
      await cache.settled();
      checkBytes(await cache.get(x.id), x.bytes, "the chunk written over the empty file");
    },
  },
  {
    name: "a chunk larger than the whole capacity is dropped",
    async run() {
      const cache = await opfsCache(await newLocation(), 1);
      const big = await noiseChunk(2 * SIZE, 6);
      await cache.put(big.id, big.bytes);
      check((await cache.get(big.id)) === undefined, "a chunk larger than the cache was kept");
      check(cache.stats().dropped === 1, `dropped ${cache.stats().dropped}`);
    },
  },
  {
    name: "a put refused for quota evicts the least recently used and is written on the second try",
    async run() {
      const location = await newLocation();
      const refusals: Partial<Refusals> = {};
      const cache = await opfsCache(location, 4, quotaRoot(await testRoot(), refusals));
      const [a, b, c] = await Promise.all([7, 8, 9].map((seed) => noiseChunk(SIZE, seed)));
      await cache.put(a!.id, a!.bytes);
      await cache.put(b!.id, b!.bytes);
      await cache.settled();
      refusals.chunks = 1;
      await cache.put(c!.id, c!.bytes);
      await cache.settled();
      checkBytes(await cache.get(c!.id), c!.bytes, "the chunk written on the second try");
      check((await cache.get(a!.id)) === undefined, "the least recently used chunk was not evicted");
      checkBytes(await cache.get(b!.id), b!.bytes, "b");
      const stats = cache.stats();
      check(stats.evictions === 1 && stats.dropped === 0, `stats ${JSON.stringify(stats)}`);
    },
  },
  {
    name: "a put refused for quota twice is dropped, leaving neither a file nor an index entry",
    async run() {
      const location = await newLocation();
      const refusals: Partial<Refusals> = {};
      const cache = await opfsCache(location, 4, quotaRoot(await testRoot(), refusals));
      const [a, c] = await Promise.all([10, 11].map((seed) => noiseChunk(SIZE, seed)));
      await cache.put(a!.id, a!.bytes);
      await cache.settled();
      refusals.chunks = 2;
      await cache.put(c!.id, c!.bytes);
      await cache.settled();
      check((await cache.get(c!.id)) === undefined, "a dropped chunk was a hit");
      const { ids } = await heldIn(await locationDir(location));
      check(ids.length === 0, `files left: ${ids.join()}`);
      const usage = await cache.usage();
      check(usage.chunks === 0 && usage.bytes === 0, `usage ${JSON.stringify(usage)}`);
      const stats = cache.stats();
      check(stats.dropped === 1, `dropped ${stats.dropped}`);
      const said = new RegExp(
        `^Cannot write chunk ${idToHex(c!.id)} to OPFS chunk cache "${location}": QuotaExceededError: .*` +
          "the origin's storage is full.*; the chunk was not cached$",
      );
      check(said.test(stats.lastError ?? ""), `lastError ${stats.lastError}`);
      await cache.put(c!.id, c!.bytes);
      await cache.settled();
      checkBytes(await cache.get(c!.id), c!.bytes, "the chunk put once the disk has room");
    },
  },
  {
    name: "a cache whose root throws answers misses, drops puts and says why",
    async run() {
      const denied = () => Promise.reject(new DOMException("Access to storage is denied", "SecurityError"));
      const root = {
        name: "denied",
        getDirectoryHandle: denied,
        getFileHandle: denied,
        removeEntry: denied,
        keys: () => ({ [Symbol.asyncIterator]: () => ({ next: denied }) }),
      } as OpfsDirectoryHandle;
      const cache = new OpfsChunkCache({ root, directory: "x" });
      const x = await noiseChunk(SIZE, 12);
      check((await cache.get(x.id)) === undefined, "a disabled cache had a hit");
      await cache.put(x.id, x.bytes);
      check((await cache.get(x.id)) === undefined, "a disabled cache kept a chunk");
      check(!(await cache.ready()), "ready() is true");
      const said =
        /^Cannot open OPFS chunk cache "x": SecurityError: .*storage is not allowed here.*; chunks are read/;
      check(said.test(cache.disabledReason ?? ""), `disabledReason ${cache.disabledReason}`);
      const { hits, misses, dropped } = cache.stats();
      check(hits === 0 && misses === 2 && dropped === 1, `stats ${JSON.stringify(cache.stats())}`);
      await cache.settled();
      check((await cache.usage()).chunks === 0, "a disabled cache counts chunks");
    },
  },
  {
    name: "a damaged index is rebuilt from the files, which stay readable",
    async run() {
      const location = await newLocation();
      const first = await opfsCache(location, 8);
      const xs = await Promise.all([13, 14, 15].map((seed) => noiseChunk(SIZE, seed)));
      for (const x of xs) await first.put(x.id, x.bytes);
      await first.settled();
      await writeRaw(await locationDir(location), "tessera-index", new TextEncoder().encode("damaged"));
      const second = await opfsCache(location, 8);
      for (const [i, x] of xs.entries()) checkBytes(await second.get(x.id), x.bytes, `chunk ${i}`);
      const y = await noiseChunk(SIZE, 16);
      await second.put(y.id, y.bytes);
      await second.settled();
      const usage = await second.usage();
      check(usage.chunks === 4 && usage.bytes === roomBytes(4), `usage ${JSON.stringify(usage)}`);
      const said = `The index of OPFS chunk cache "${location}" (tessera-index) failed its check: ` +
        "7 bytes, shorter than any index; rebuilt it from the directory";
      check(second.stats().lastError === said, `lastError ${second.stats().lastError}`);
      await first.put(xs[0]!.id, xs[0]!.bytes);
      await first.settled();
      check((await first.usage()).chunks === 4, "the first cache counts the rebuilt index differently");
    },
  },
  {
    name: "chunk files the index lacks are adopted as the least recently used",
    async run() {
      const location = await newLocation();
      const stray = await noiseChunk(SIZE, 17);
      await writeRaw(
        await locationDir(location),
        idToHex(stray.id),
        encodeChunk(stray.bytes, { codec: "none" }),
      );
      const cache = await opfsCache(location, 3);
      checkBytes(await cache.get(stray.id), stray.bytes, "the stray file, verified");
      const xs = await Promise.all([18, 19, 20].map((seed) => noiseChunk(SIZE, seed)));
      await cache.put(xs[0]!.id, xs[0]!.bytes);
      await cache.settled();
      check((await cache.usage()).chunks === 2, "the stray file was not adopted");
      for (const x of xs.slice(1)) await cache.put(x.id, x.bytes);
      await cache.settled();
      check((await cache.get(stray.id)) === undefined, "the adopted file was not evicted first");
      for (const [i, x] of xs.entries()) checkBytes(await cache.get(x.id), x.bytes, `chunk ${i}`);
    },
  },
  {
    name: "a hit is recorded soon without any further call",
    async run() {
      const location = await newLocation();
      const [writer, reader] = [await opfsCache(location, 3), await opfsCache(location, 3)];
      const [a, b, c, d] = await Promise.all([21, 22, 23, 24].map((seed) => noiseChunk(SIZE, seed)));
      for (const x of [a!, b!, c!]) await writer.put(x.id, x.bytes);
      await writer.settled();
      const dir = await locationDir(location);
      // Under the lock: a file read while another is swapped in fails.
      const index = () => locks().request(writer.lockName, () => fileText(dir, "tessera-index"));
      const before = await index();
      checkBytes(await reader.get(a!.id), a!.bytes, "a read by the second cache");
      // Only the reader's record of its hit can change the index now.
      for (let waited = 0; (await index()) === before; waited += 100) {
        check(waited < 10_000, "the hit was not recorded within 10 s");
        await sleep(100);
      }
      await writer.put(d!.id, d!.bytes);
      await writer.settled();
      const { ids } = await heldIn(await locationDir(location));
      check(ids.includes(idToHex(a!.id)), "a, read through the second cache, was evicted");
      check(!ids.includes(idToHex(b!.id)), "b, the least recently used, was kept");
    },
  },
  {
    name: "a put whose index write is refused for quota evicts the least recently used and is written",
    async run() {
      const location = await newLocation();
      const refusals: Partial<Refusals> = {};
      const cache = await opfsCache(location, 4, quotaRoot(await testRoot(), refusals));
      const [a, b, c, d] = await Promise.all([25, 26, 27, 28].map((seed) => noiseChunk(SIZE, seed)));
      for (const x of [a!, b!]) {
        await cache.put(x.id, x.bytes);
        await cache.settled();
      }
      refusals.index = 1;
      await cache.put(c!.id, c!.bytes);
      await cache.settled();
      checkBytes(await cache.get(c!.id), c!.bytes, "the chunk written once the index had room");
      check(!(await hasFile(location, a!.id)), "the least recently used chunk was not evicted");
      let stats = cache.stats();
      check(stats.evictions >= 1 && stats.dropped === 0, `stats ${JSON.stringify(stats)}`);
      // Opening the index for writing is refused the same way.
      refusals.opens = 1;
      await cache.put(d!.id, d!.bytes);
      await cache.settled();
      checkBytes(await cache.get(d!.id), d!.bytes, "the chunk written once the index could be opened");
      stats = cache.stats();
      check(stats.dropped === 0, `stats ${JSON.stringify(stats)}`);
      const usage = await cache.usage();
      const { ids, bytes } = await heldIn(await locationDir(location));
      check(
        usage.chunks === ids.length && usage.bytes === bytes,
        `usage ${JSON.stringify(usage)}, files ${ids}`,
      );
    },
  },
  {
    name: "a put whose index write is refused for quota twice is dropped, and a later put is written",
    async run() {
      const location = await newLocation();
      const refusals: Partial<Refusals> = {};
      const cache = await opfsCache(location, 4, quotaRoot(await testRoot(), refusals));
      const [a, c] = await Promise.all([29, 30].map((seed) => noiseChunk(SIZE, seed)));
      await cache.put(a!.id, a!.bytes);
      await cache.settled();
      refusals.index = 2;
      await cache.put(c!.id, c!.bytes);
      await cache.settled();
      check((await cache.get(c!.id)) === undefined, "a dropped chunk was a hit");
      check(!(await hasFile(location, c!.id)), "the dropped chunk's file was written");
      const { dropped, lastError } = cache.stats();
      check(dropped === 1, `dropped ${dropped}`);
      const said =
        `Cannot write the index of OPFS chunk cache "${location}" (tessera-index): QuotaExceededError`;
      check(
        lastError?.startsWith(said) && lastError.endsWith("; 1 chunk was not cached"),
        `lastError ${lastError}`,
      );
      await cache.put(c!.id, c!.bytes);
      await cache.settled();
      checkBytes(await cache.get(c!.id), c!.bytes, "the chunk put once the disk has room");
    },
  },
  {
    name: "put() resolves at once while another tab holds the lock, and settled() waits for the write",
    async run() {
      const location = await newLocation();
      const cache = await opfsCache(location, 4);
      const x = await noiseChunk(SIZE, 31);
      const other = await holdLock(cache.lockName);
      await cache.put(x.id, x.bytes);
      check(
        cache.stats().dropped === 0,
        `a put waiting for the lock was dropped: ${JSON.stringify(cache.stats())}`,
      );
      let settled = false;
      const settling = cache.settled().then(() => void (settled = true));
      await until("a lock timeout", () => cache.stats().lockTimeouts > 0);
      check(!settled, "settled() resolved while the write waited for the lock");
      check(!(await hasFile(location, x.id)), "the chunk was written while another tab held the lock");
      await other.release();
      await settling;
      checkBytes(await cache.get(x.id), x.bytes, "the chunk written once the lock was released");
      const { puts, dropped } = cache.stats();
      check(puts === 1 && dropped === 0, `stats ${JSON.stringify(cache.stats())}`);
    },
  },
  {
    name: "puts beyond the 16 MiB that may wait for the lock are dropped, and the rest written after it",
    async run() {
      const location = await newLocation();
      const cache = await opfsCache(location, 32, undefined, MAX_CHUNK_LENGTH);
      const xs = await Promise.all(
        Array.from({ length: 16 }, (_, i) => noiseChunk(MAX_CHUNK_LENGTH, 40 + i)),
      );
      const other = await holdLock(cache.lockName);
      for (const x of xs) await cache.put(x.id, x.bytes);
      const { dropped, lastError } = cache.stats();
      check(dropped === 1, `dropped ${dropped}`);
      const said = `Cannot write chunk ${idToHex(xs[15]!.id)} to OPFS chunk cache "${location}": 15 chunks`;
      check(
        lastError?.startsWith(said) && lastError.endsWith("; the chunk was not cached"),
        `lastError ${lastError}`,
      );
      await other.release();
      await cache.settled();
      for (const [i, x] of xs.slice(0, 15).entries()) {
        checkBytes(await cache.get(x.id), x.bytes, `chunk ${i}`);
      }
      check(cache.stats().puts === 15, `puts ${cache.stats().puts}`);
    },
  },
  {
    name: "a cache given the origin's root shares the default cache's lock",
    async run() {
      const directory = `default-${await newLocation()}`;
      const plain = new OpfsChunkCache({ directory });
      const rooted = new OpfsChunkCache({ directory, root: await opfsRoot() });
      check(rooted.lockName === plain.lockName, `lock names ${rooted.lockName} and ${plain.lockName}`);
      const x = await noiseChunk(SIZE, 32);
      const other = await holdLock(plain.lockName);
      await rooted.put(x.id, x.bytes);
      const dir = await (await opfsRoot()).getDirectoryHandle(directory);
      const written = () => dir.getFileHandle(idToHex(x.id)).then(() => true, () => false);
      await until(
        "a lock timeout or the write",
        async () => rooted.stats().lockTimeouts > 0 || await written(),
      );
      check(!(await written()), "the chunk was written while the default cache's lock was held");
      await other.release();
      await rooted.settled();
      checkBytes(await plain.get(x.id), x.bytes, "the chunk, read through the default cache");
      const root = await opfsRoot() as unknown as { removeEntry(name: string, o: object): Promise<void> };
      await root.removeEntry(directory, { recursive: true });
    },
  },
  {
    name: "a scan deletes a chunk file of a size no chunk has, so the index stays whole and is not rescanned",
    async run() {
      const location = await newLocation();
      let listings = 0;
      const counted = wrapRoot(await testRoot(), { listed: () => void listings++ });
      const a = await opfsCache(location, 8, counted);
      const [x, y, z] = await Promise.all([33, 34, 35].map((seed) => noiseChunk(SIZE, seed)));
      await a.put(x!.id, x!.bytes);
      await a.settled();
      const stray = "ab".repeat(32);
      await writeRaw(await locationDir(location), stray, new Uint8Array([1, 2, 3, 4, 5]));
      // Another tab's cache scans the directory at its first change.
      const b = await opfsCache(location, 8);
      await b.put(y!.id, y!.bytes);
      await b.settled();
      check(!(await heldIn(await locationDir(location))).ids.includes(stray), "the 5-byte file was kept");
      check(b.stats().damaged === 1, `damaged ${b.stats().damaged}`);
      const before = listings;
      await a.put(z!.id, z!.bytes);
      await a.settled();
      check(listings === before, "the first cache scanned the directory again");
      check(a.stats().lastError === undefined, `lastError ${a.stats().lastError}`);
      check((await a.usage()).chunks === 3, `usage ${JSON.stringify(await a.usage())}`);
    },
  },
  {
    name: "a damaged file another tab wrote again before this cache's next change stays in the index",
    async run() {
      const location = await newLocation();
      const [a, b] = [await opfsCache(location, 4), await opfsCache(location, 4)];
      const x = await noiseChunk(SIZE, 36);
      await b.put(x.id, x.bytes);
      await b.settled();
      const damaged = encodeChunk(x.bytes, { codec: "none" });
      damaged[100] = damaged[100]! ^ 1;
      await writeRaw(await locationDir(location), idToHex(x.id), damaged);
      check((await a.get(x.id)) === undefined, "a damaged file was served");
      await b.put(x.id, x.bytes);
      await b.settled();
      await a.settled();
      checkBytes(await b.get(x.id), x.bytes, "the chunk written again");
      const usage = await b.usage();
      check(usage.chunks === 1 && usage.bytes === roomBytes(1), `usage ${JSON.stringify(usage)}`);
    },
  },
  {
    name: "a cache whose directory vanished makes it again at its next change, whichever call found it gone",
    async run() {
      const location = await newLocation();
      const real = await testRoot();
      // Cleared site data, as chromium shows it: every call on the old handle fails, and it lists nothing.
      let cleared = 0;
      const root: OpfsDirectoryHandle = {
        name: real.name,
        getDirectoryHandle: async (name, options) => {
          const handle = await real.getDirectoryHandle(name, options);
          const made = cleared;
          const alive = () => {
            if (cleared !== made) throw new DOMException("The directory was deleted", "NotFoundError");
          };
          return {
            name: handle.name,
            getDirectoryHandle: async (n, o) => (alive(), await handle.getDirectoryHandle(n, o)),
            getFileHandle: async (n, o) => (alive(), await handle.getFileHandle(n, o)),
            removeEntry: async (n) => (alive(), await handle.removeEntry(n)),
            keys: () => (cleared !== made ? (async function* () {})() : handle.keys()),
          };
        },
        getFileHandle: (name, options) => real.getFileHandle(name, options),
        removeEntry: (name) => real.removeEntry(name),
        keys: () => real.keys(),
      };
      const cache = await opfsCache(location, 4, root);
      const [x, y, z] = await Promise.all([54, 55, 56].map((seed) => noiseChunk(SIZE, seed)));
      await cache.put(x!.id, x!.bytes);
      await cache.settled();
      cleared++;
      await (real as unknown as { removeEntry(name: string, o: object): Promise<void> }).removeEntry(
        location,
        {
          recursive: true,
        },
      );
      // The change that finds the directory gone loses its chunk; the next one makes it again.
      await cache.put(y!.id, y!.bytes);
      await cache.settled();
      await cache.put(z!.id, z!.bytes);
      await cache.settled();
      checkBytes(await cache.get(z!.id), z!.bytes, "a chunk put after the directory was made again");
    },
  },
  {
    name: "a change reads the index file only when another cache has changed it",
    async run() {
      const location = await newLocation();
      let reads = 0;
      const readsSoFar = () => reads;
      const counted = wrapRoot(await testRoot(), {
        file: (name, handle) =>
          name !== "tessera-index" ? handle : {
            createWritable: () => handle.createWritable(),
            getFile: async () => {
              const file = await handle.getFile();
              return {
                size: file.size,
                lastModified: file.lastModified,
                arrayBuffer: () => (reads++, file.arrayBuffer()),
                slice: (start, end) => file.slice(start, end),
              };
            },
          },
      });
      const a = await opfsCache(location, 8, counted);
      const xs = await Promise.all([37, 38, 39, 40, 41].map((seed) => noiseChunk(SIZE, seed)));
      for (const x of xs.slice(0, 3)) {
        await a.put(x.id, x.bytes);
        await a.settled();
      }
      checkBytes(await a.get(xs[0]!.id), xs[0]!.bytes, "a hit");
      await a.settled();
      check(readsSoFar() === 0, `the index was read ${reads} times, though only this cache wrote it`);
      const b = await opfsCache(location, 8);
      await b.put(xs[3]!.id, xs[3]!.bytes);
      await b.settled();
      await a.put(xs[4]!.id, xs[4]!.bytes);
      await a.settled();
      check(readsSoFar() === 1, `the index was read ${reads} times after another cache changed it once`);
      const usage = await a.usage();
      check(usage.chunks === 5 && usage.bytes === roomBytes(5), `usage ${JSON.stringify(usage)}`);
    },
  },
  {
    name:
      "a chunk still waiting for the lock lockPatienceMs after its put is dropped, naming the chunk and the lock",
    async run() {
      const location = await newLocation();
      const cache = new OpfsChunkCache({
        root: await testRoot(),
        directory: location,
        capacityBytes: roomBytes(4),
        lockPatienceMs: 2500,
      });
      const x = await noiseChunk(SIZE, 50);
      const other = await holdLock(cache.lockName);
      try {
        await cache.put(x.id, x.bytes);
        await cache.settled();
      } finally {
        await other.release();
      }
      const { dropped, puts, lastError } = cache.stats();
      check(dropped === 1 && puts === 0, `stats ${JSON.stringify(cache.stats())}`);
      const said =
        `Cannot write chunk ${idToHex(x.id)} to OPFS chunk cache "${location}": waited 2.5 s for ` +
        `its lock "${cache.lockName}", held by another tab or worker of the site`;
      check(
        lastError?.startsWith(said) && lastError.endsWith("; the chunk was not cached"),
        `lastError ${lastError}`,
      );
      check(!(await hasFile(location, x.id)), "the dropped chunk was written");
    },
  },
];

const ALL_CASES = [...CACHE_CASES, ...OPFS_CASES];

/** The names of every case a page and a worker run, in order. */
export const CASE_NAMES: readonly string[] = ALL_CASES.map((c) => c.name);

async function runHere(name: string): Promise<CaseResult> {
  const found = ALL_CASES.find((c) => c.name === name);
  if (!found) return { name, error: `No case is named "${name}"` };
  try {
    await found.run(opfsTarget);
    return { name };
  } catch (error) {
    return { name, error: error instanceof Error ? `${error.message}\n${error.stack}` : String(error) };
  }
}

// One cache a location for the rest of the page's life, as a page keeps its replica's. A location named
// "/<name>" is the directory <name> in the origin's root, where the default cache's is.
const cachesAt = new Map<string, OpfsChunkCache>();

async function cacheAt(location: string, chunks: number): Promise<OpfsChunkCache> {
  let cache = cachesAt.get(location);
  if (!cache) {
    cache = location.startsWith("/")
      ? new OpfsChunkCache({ directory: location.slice(1), capacityBytes: roomBytes(chunks) })
      : await opfsCache(location, chunks);
    cachesAt.set(location, cache);
  }
  return cache;
}

async function putChunks(location: string, seeds: number[]): Promise<void> {
  const cache = await cacheAt(location, seeds.length);
  for (const seed of seeds) {
    const x = await noiseChunk(SIZE, seed);
    await cache.put(x.id, x.bytes);
  }
  await cache.settled();
}

async function readChunks(location: string, seeds: number[]): Promise<{ hits: number; wrong: string[] }> {
  const cache = await cacheAt(location, seeds.length);
  const before = cache.stats().hits;
  const wrong: string[] = [];
  for (const seed of seeds) {
    const x = await noiseChunk(SIZE, seed);
    const got = await cache.get(x.id);
    try {
      if (got !== undefined) checkBytes(got, x.bytes, `chunk ${seed}`);
    } catch (error) {
      wrong.push((error as Error).message);
    }
  }
  await cache.settled();
  return { hits: cache.stats().hits - before, wrong };
}

/** Random puts and reads of one set of chunks, checking every hit and the bytes held between changes. */
async function churn(
  options: { location: string; seed: number; rounds: number; capacityChunks: number },
): Promise<ChurnResult> {
  const { location, rounds, capacityChunks } = options;
  const cache = await opfsCache(location, capacityChunks);
  const xs = await Promise.all(
    Array.from({ length: capacityChunks * 3 }, (_, i) => noiseChunk(SIZE, 1000 + i)),
  );
  const dir = await locationDir(location);
  let state = options.seed;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % xs.length;
  };
  const wrong: string[] = [];
  let mostBytes = 0;
  for (let round = 0; round < rounds; round++) {
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 4; i++) {
      const x = xs[next()]!;
      work.push(cache.put(x.id, x.bytes));
      const y = xs[next()]!;
      work.push(
        cache.get(y.id).then((got) => {
          try {
            if (got !== undefined) checkBytes(got, y.bytes, `round ${round}`);
          } catch (error) {
            wrong.push((error as Error).message);
          }
        }),
      );
    }
    await Promise.all(work);
    const held = await locks().request(cache.lockName, () => heldIn(dir));
    mostBytes = Math.max(mostBytes, held.bytes);
  }
  await cache.settled();
  const { hits, puts, evictions } = cache.stats();
  return { wrong, mostBytes, hits, puts, evictions };
}

// A worker created by the page: this module again, answering `{ id, name }` with `{ id, result }`.
let worker: Worker | undefined;
let asked = 0;
const waiting = new Map<number, (result: CaseResult) => void>();

function runInWorker(name: string): Promise<CaseResult> {
  if (!worker) {
    worker = new Worker(new URL(import.meta.url), { type: "module" });
    worker.onmessage = ({ data }) => waiting.get(data.id)?.(data.result);
    worker.onerror = (event) => {
      for (const [, done] of waiting) done({ name, error: `The worker failed: ${event.message}` });
      waiting.clear();
    };
  }
  const id = ++asked;
  return new Promise((resolve) => {
    waiting.set(id, (result) => {
      waiting.delete(id);
      resolve(result);
    });
    worker!.postMessage({ id, name });
  });
}

const scope = globalThis as unknown as {
  document?: unknown;
  WorkerGlobalScope?: unknown;
  opfsCacheTests?: OpfsCacheTests;
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown): void;
};
if (scope.WorkerGlobalScope !== undefined) {
  scope.onmessage = async ({ data }) => scope.postMessage({ id: data.id, result: await runHere(data.name) });
} else if (scope.document !== undefined) {
  scope.opfsCacheTests = {
    run: (name, where) => (where === "worker" ? runInWorker(name) : runHere(name)),
    putChunks,
    readChunks,
    churn,
  };
}
