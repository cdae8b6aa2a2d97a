/**
 * The browser side of `opfs_cache_test.ts`, bundled for chromium: the chunk cache suite against
 * {@linkcode OpfsChunkCache} and the checks only OPFS has (`_opfs_cases.ts`), run on a page and, with this
 * same module loaded as a module worker, in a dedicated worker. A page gets `globalThis.opfsCacheTests`; a worker answers
 * messages. Imported anywhere else (the test names its cases from here), it installs nothing.
 *
 * @module
 */

import { OpfsChunkCache } from "../../src/chunk/opfs_cache.ts";
import { CACHE_CASES, checkBytes, noiseChunk } from "../chunk/_cache_suite.ts";

import { OPFS_CASES } from "./_opfs_cases.ts";
import { heldIn, locationDir, locks, opfsCache, opfsTarget, roomBytes, SIZE } from "./_opfs_fixtures.ts";
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
