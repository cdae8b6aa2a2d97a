/**
 * The cases only the OPFS chunk cache has, run on a page and in a dedicated worker like the chunk cache
 * suite: locks held by another tab, quota errors, damaged and stray files, the index file, cleared site data.
 *
 * @module
 */

import { encodeChunk, MAX_CHUNK_LENGTH } from "../../src/chunk/codec.ts";
import { idToHex } from "../../src/chunk/ids.ts";
import { OpfsChunkCache, type OpfsDirectoryHandle } from "../../src/chunk/opfs_cache.ts";
import { type CacheCase, check, checkBytes, noiseChunk } from "../chunk/_cache_suite.ts";

import {
  fileText,
  hasFile,
  heldIn,
  holdLock,
  locationDir,
  locks,
  newLocation,
  opfsCache,
  opfsRoot,
  quotaRoot,
  type Refusals,
  roomBytes,
  SIZE,
  sleep,
  testRoot,
  until,
  wrapRoot,
  writeRaw,
} from "./_opfs_fixtures.ts";

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
