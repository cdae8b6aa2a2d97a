/**
 * What every persistent {@linkcode ChunkCache} must do, written once and run against each: the directory
 * cache under Deno and Bun (`cache_test.ts`), the OPFS cache in chromium, on a page and in a worker
 * (`../browser/opfs_cache_test.ts`). No `node:` module and no node:assert, so it bundles for a browser.
 * A cache may write in the background (the OPFS cache's `put` resolves once the chunk is queued): the cases
 * call `settled()` before they look for what was put.
 *
 * @module
 */

import { CHUNK_HEADER_LENGTH, encodeChunk, MAX_CHUNK_LENGTH } from "../../src/chunk/codec.ts";
import { type ChunkId, chunkId, idToHex } from "../../src/chunk/ids.ts";
import type { ChunkCache } from "../../src/chunk/source.ts";
import { pattern } from "../_helpers/pattern.ts";

/** How much a cache opened by {@linkcode CacheSuiteTarget.open} must hold: a cache counting files keeps
 * `chunks` files, one counting bytes keeps `chunks` chunk objects of `chunkSize` bytes. */
export interface CacheRoom {
  chunks: number;
  chunkSize: number;
}

/** What the suite needs of an implementation: where caches live, and a look at their files. */
export interface CacheSuiteTarget {
  /** A new, empty place for caches. */
  location(): Promise<string>;
  /** Opens a cache on `location`; a second call is another process (or tab) sharing it. */
  open(location: string, room: CacheRoom): ChunkCache | Promise<ChunkCache>;
  /** Replaces the file that holds chunk `id` at `location` with `bytes`, as a disk fault would. */
  damage(location: string, id: ChunkId, bytes: Uint8Array): Promise<void>;
  /** Deletes the file that holds chunk `id`, as another process evicting it would. */
  remove(location: string, id: ChunkId): Promise<void>;
  /** The chunks whose files are at `location` (ids in hex, sorted), and the bytes of those files. */
  held(location: string): Promise<{ ids: string[]; bytes: number }>;
  /** Makes caches with options each must refuse, and the error class it must throw. */
  badOptions: { what: string; make: () => unknown; error: typeof TypeError | typeof RangeError }[];
  /** Lets time pass where uses are ordered by file times; caches that count uses need nothing. */
  tick?(): Promise<void>;
}

/** One behaviour: a sentence, and its check (which throws, saying what went wrong, when it fails). */
export interface CacheCase {
  name: string;
  run(target: CacheSuiteTarget): Promise<void>;
}

/** Throws `message` unless `condition` holds. */
export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** Throws unless `actual` holds the same bytes as `expected`, naming `what` and the first difference. */
export function checkBytes(actual: Uint8Array | undefined, expected: Uint8Array, what: string): void {
  check(actual !== undefined, `${what}: a miss, expected ${expected.length} bytes`);
  check(actual.length === expected.length, `${what}: ${actual.length} bytes, expected ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) throw new Error(`${what}: first difference at byte ${i}`);
  }
}

/** A chunk of `size` noise bytes and its id. */
export async function noiseChunk(size: number, seed: number): Promise<{ id: ChunkId; bytes: Uint8Array }> {
  const bytes = pattern(size, seed);
  return { id: await chunkId(bytes), bytes };
}

const SIZE = 1024;
const chunks = (count: number, from: number, size = SIZE) =>
  Promise.all(Array.from({ length: count }, (_, i) => noiseChunk(size, from + i)));
const settle = (...caches: ChunkCache[]) => Promise.all(caches.map((c) => c.settled?.()));

async function checkWithin(target: CacheSuiteTarget, location: string, room: CacheRoom, when: string) {
  const { ids, bytes } = await target.held(location);
  check(ids.length <= room.chunks, `${ids.length} chunk files ${when}, capacity ${room.chunks}`);
  const most = room.chunks * (room.chunkSize + CHUNK_HEADER_LENGTH);
  check(bytes <= most, `${bytes} bytes of chunk files ${when}, capacity ${most}`);
}

/** The cases, in the order they run. */
export const CACHE_CASES: readonly CacheCase[] = [
  {
    name: "get() answers undefined for a chunk never put",
    async run(target) {
      const cache = await target.open(await target.location(), { chunks: 4, chunkSize: SIZE });
      const [x] = await chunks(1, 1);
      check((await cache.get(x!.id)) === undefined, "a chunk never put was a hit");
    },
  },
  {
    name: "put() then get() gives back the same bytes, for chunks of 1 byte to 1 MiB",
    async run(target) {
      const location = await target.location();
      const cache = await target.open(location, { chunks: 4, chunkSize: MAX_CHUNK_LENGTH });
      const sizes = [1, 4096 + 7, 65536, MAX_CHUNK_LENGTH];
      const xs = await Promise.all(sizes.map((size, i) => noiseChunk(size, 10 + i)));
      for (const x of xs) await cache.put(x.id, x.bytes);
      await settle(cache);
      for (const [i, x] of xs.entries()) {
        checkBytes(await cache.get(x.id), x.bytes, `the ${sizes[i]}-byte chunk`);
      }
      const { ids } = await target.held(location);
      check(ids.join() === xs.map((x) => idToHex(x.id)).sort().join(), `holds ${ids.join()}`);
    },
  },
  {
    name: "get() hands out copies: changing what was put or what was read changes no later read",
    async run(target) {
      const cache = await target.open(await target.location(), { chunks: 4, chunkSize: SIZE });
      const [x] = await chunks(1, 20);
      const input = x!.bytes.slice();
      await cache.put(x!.id, input);
      input.fill(0);
      await settle(cache);
      const first = await cache.get(x!.id);
      checkBytes(first, x!.bytes, "the first read");
      first!.fill(1);
      checkBytes(await cache.get(x!.id), x!.bytes, "a read after the first was changed");
    },
  },
  {
    name: "a chunk put twice is kept once",
    async run(target) {
      const location = await target.location();
      const cache = await target.open(location, { chunks: 4, chunkSize: SIZE });
      const [x] = await chunks(1, 30);
      await cache.put(x!.id, x!.bytes);
      await cache.put(x!.id, x!.bytes);
      await Promise.all([cache.put(x!.id, x!.bytes), cache.put(x!.id, x!.bytes)]);
      await settle(cache);
      const { ids, bytes } = await target.held(location);
      check(ids.length === 1, `${ids.length} files for one chunk`);
      check(bytes === SIZE + CHUNK_HEADER_LENGTH, `${bytes} bytes for one chunk object`);
      checkBytes(await cache.get(x!.id), x!.bytes, "the chunk");
    },
  },
  {
    name: "a damaged chunk file reads as a miss, is deleted, and a later put replaces it",
    async run(target) {
      const location = await target.location();
      const cache = await target.open(location, { chunks: 8, chunkSize: SIZE });
      const xs = await chunks(5, 40);
      const other = await noiseChunk(SIZE, 99);
      const object = encodeChunk(xs[0]!.bytes, { codec: "none" });
      const flipped = object.slice();
      flipped[100] = flipped[100]! ^ 0xff;
      const damages: [string, Uint8Array][] = [
        ["a flipped byte", flipped],
        ["a file cut short", object.subarray(0, object.length - 1)],
        ["a text file", new TextEncoder().encode("not a chunk")],
        ["another chunk's object", encodeChunk(other.bytes, { codec: "none" })],
        ["a header alone", object.subarray(0, CHUNK_HEADER_LENGTH)],
      ];
      for (const x of xs) await cache.put(x.id, x.bytes);
      await settle(cache);
      for (const [i, [, bytes]] of damages.entries()) await target.damage(location, xs[i]!.id, bytes);
      for (const [i, [what]] of damages.entries()) {
        check((await cache.get(xs[i]!.id)) === undefined, `${what} was served`);
      }
      await settle(cache);
      const { ids } = await target.held(location);
      for (const [i, [what]] of damages.entries()) {
        check(!ids.includes(idToHex(xs[i]!.id)), `the file with ${what} was not deleted`);
      }
      for (const x of xs) await cache.put(x.id, x.bytes);
      await settle(cache);
      for (const [i, x] of xs.entries()) checkBytes(await cache.get(x.id), x.bytes, `chunk ${i} put again`);
    },
  },
  {
    name: "a chunk file deleted under the cache (another process evicted it) reads as a miss",
    async run(target) {
      const location = await target.location();
      const cache = await target.open(location, { chunks: 4, chunkSize: SIZE });
      const [x, y] = await chunks(2, 50);
      await cache.put(x!.id, x!.bytes);
      await cache.put(y!.id, y!.bytes);
      await settle(cache);
      await target.remove(location, x!.id);
      check((await cache.get(x!.id)) === undefined, "a deleted chunk was a hit");
      checkBytes(await cache.get(y!.id), y!.bytes, "the other chunk");
      await cache.put(x!.id, x!.bytes);
      await settle(cache);
      checkBytes(await cache.get(x!.id), x!.bytes, "the chunk put again");
    },
  },
  {
    name: "chunks survive reopening the cache",
    async run(target) {
      const location = await target.location();
      const room = { chunks: 8, chunkSize: SIZE };
      const first = await target.open(location, room);
      const xs = await chunks(6, 60);
      for (const x of xs) await first.put(x.id, x.bytes);
      await settle(first);
      const again = await target.open(location, room);
      for (const [i, x] of xs.entries()) {
        checkBytes(await again.get(x.id), x.bytes, `chunk ${i} after reopening`);
      }
    },
  },
  {
    name: "two caches on one location read each other's chunks",
    async run(target) {
      const location = await target.location();
      const room = { chunks: 8, chunkSize: SIZE };
      const [a, b] = await Promise.all([target.open(location, room), target.open(location, room)]);
      const [x, y] = await chunks(2, 70);
      await a!.put(x!.id, x!.bytes);
      await b!.put(y!.id, y!.bytes);
      await settle(a!, b!);
      checkBytes(await b!.get(x!.id), x!.bytes, "b reading a's chunk");
      checkBytes(await a!.get(y!.id), y!.bytes, "a reading b's chunk");
    },
  },
  {
    name: "concurrent puts of the same chunks by two caches leave one good copy of each",
    async run(target) {
      const location = await target.location();
      const room = { chunks: 8, chunkSize: SIZE };
      const [a, b] = await Promise.all([target.open(location, room), target.open(location, room)]);
      const xs = await chunks(4, 80);
      await Promise.all(
        xs.flatMap((x) => [a!.put(x.id, x.bytes), b!.put(x.id, x.bytes), a!.put(x.id, x.bytes)]),
      );
      await settle(a!, b!);
      const { ids, bytes } = await target.held(location);
      check(ids.join() === xs.map((x) => idToHex(x.id)).sort().join(), `holds ${ids.length} files`);
      check(bytes === 4 * (SIZE + CHUNK_HEADER_LENGTH), `${bytes} bytes of chunk files`);
      for (const [i, x] of xs.entries()) {
        checkBytes(await a!.get(x.id), x.bytes, `chunk ${i} through a`);
        checkBytes(await b!.get(x.id), x.bytes, `chunk ${i} through b`);
      }
    },
  },
  {
    name: "concurrent puts of different chunks by two caches stay within capacity and serve only right bytes",
    async run(target) {
      const location = await target.location();
      const room = { chunks: 10, chunkSize: SIZE };
      const [a, b] = await Promise.all([target.open(location, room), target.open(location, room)]);
      const xs = await chunks(16, 100);
      const ys = await chunks(16, 200);
      await Promise.all([
        ...xs.map((x) => a!.put(x.id, x.bytes)),
        ...ys.map((y) => b!.put(y.id, y.bytes)),
      ]);
      await settle(a!, b!);
      await checkWithin(target, location, room, "after the puts");
      let found = 0;
      for (const [i, x] of [...xs, ...ys].entries()) {
        for (const cache of [a!, b!]) {
          const got = await cache.get(x.id);
          if (got !== undefined) checkBytes(got, x.bytes, `chunk ${i}`);
          found += got === undefined ? 0 : 1;
        }
      }
      check(found > 0, "nothing was kept");
    },
  },
  {
    name: "eviction keeps the cache within its capacity and always keeps the chunk just written",
    async run(target) {
      const location = await target.location();
      const room = { chunks: 5, chunkSize: SIZE };
      const cache = await target.open(location, room);
      const xs = await chunks(16, 300);
      for (const [i, x] of xs.entries()) {
        await cache.put(x.id, x.bytes);
        await settle(cache);
        await checkWithin(target, location, room, `after put ${i}`);
        checkBytes(await cache.get(x.id), x.bytes, `chunk ${i} just written`);
      }
      const { ids } = await target.held(location);
      check(ids.length >= 2, `eviction dropped too much: ${ids.length} files left`);
    },
  },
  {
    name: "eviction drops the least recently used chunk first: a read counts as a use",
    async run(target) {
      const location = await target.location();
      const cache = await target.open(location, { chunks: 3, chunkSize: SIZE });
      const [a, b, c, d] = await chunks(4, 400);
      for (const x of [a!, b!, c!]) {
        await cache.put(x.id, x.bytes);
        await settle(cache);
        await target.tick?.();
      }
      checkBytes(await cache.get(a!.id), a!.bytes, "a");
      await target.tick?.();
      await cache.put(d!.id, d!.bytes);
      await settle(cache);
      check((await cache.get(b!.id)) === undefined, "b, the least recently used, was kept");
      for (const [what, x] of [["a", a!], ["c", c!], ["d", d!]] as const) {
        checkBytes(await cache.get(x.id), x.bytes, what);
      }
    },
  },
  {
    name: "a read through a second cache on the location counts as a use once it settles",
    async run(target) {
      const location = await target.location();
      const room = { chunks: 3, chunkSize: SIZE };
      const [writer, reader] = await Promise.all([target.open(location, room), target.open(location, room)]);
      const [a, b, c, d] = await chunks(4, 500);
      for (const x of [a!, b!, c!]) {
        await writer.put(x.id, x.bytes);
        await settle(writer);
        await target.tick?.();
      }
      checkBytes(await reader.get(a!.id), a!.bytes, "a read by the second cache");
      await settle(reader);
      await target.tick?.();
      await writer.put(d!.id, d!.bytes);
      await settle(writer);
      const { ids } = await target.held(location);
      check(!ids.includes(idToHex(b!.id)), "b, the least recently used, was kept");
      check(ids.includes(idToHex(a!.id)), "a, read through the second cache, was evicted");
    },
  },
  {
    name: "many reads and writes at once through two caches never serve wrong bytes",
    async run(target) {
      const location = await target.location();
      const room = { chunks: 6, chunkSize: SIZE };
      const [a, b] = await Promise.all([target.open(location, room), target.open(location, room)]);
      const xs = await chunks(20, 600);
      const work: Promise<void>[] = [];
      for (let round = 0; round < 60; round++) {
        const cache = round % 2 === 0 ? a! : b!;
        const x = xs[(round * 7) % xs.length]!;
        const y = xs[(round * 3 + 1) % xs.length]!;
        work.push(cache.put(x.id, x.bytes));
        work.push(
          cache.get(y.id).then((got) => {
            if (got !== undefined) checkBytes(got, y.bytes, `round ${round}'s read`);
          }),
        );
        if (round % 10 === 9) work.push(target.remove(location, xs[round % xs.length]!.id).catch(() => {}));
      }
      await Promise.all(work);
      await settle(a!, b!);
      await checkWithin(target, location, room, "after the rounds");
      for (const [i, x] of xs.entries()) {
        const got = await a!.get(x.id);
        if (got !== undefined) checkBytes(got, x.bytes, `chunk ${i}`);
      }
    },
  },
  {
    name: "refuses bad options with TypeError or RangeError",
    async run(target) {
      check(target.badOptions.length > 0, "the target lists no bad options");
      for (const { what, make, error } of target.badOptions) {
        let thrown: unknown;
        try {
          make();
        } catch (caught) {
          thrown = caught;
        }
        check(thrown instanceof error, `${what}: threw ${thrown}, expected a ${error.name}`);
      }
    },
  },
];
