/**
 * Measuring a user's store from where Tessera runs: PUT and GET throughput of chunk- and pack-sized
 * objects at several concurrencies, ranged GETs out of a pack (how restores read packs), and the latency of
 * HEAD and of a conditional GET. What `tessera bench` prints; it writes only under its own prefix and
 * removes what it wrote, also when it fails or is aborted.
 *
 * @module
 */

import { toHex } from "../bytes.ts";
import { errorMessage, TesseraError } from "../errors.ts";
import { sleep } from "../net/backoff.ts";
import { forEachLimit } from "../pool.ts";
import type { BlobStore } from "../store/types.ts";

/** What a row measured. */
export type BenchOp = "put" | "get" | "range" | "head" | "conditional";

/** One measured row: one operation, one object size, one concurrency. */
export interface BenchRow {
  op: BenchOp;
  /** The size of the object the requests write or read. */
  objectBytes: number;
  /** Bytes each request moves: the object, the slice of a ranged GET, or 0 for HEAD and conditional GET. */
  requestBytes: number;
  concurrency: number;
  requests: number;
  bytes: number;
  seconds: number;
  /** Millions of bytes a second. */
  mbPerSec: number;
  requestsPerSec: number;
  /** Each request's time, from the call to its result, in milliseconds. */
  latencyMs: { p50: number; p90: number; p99: number };
}

/** Options of {@linkcode benchStore}. */
export interface StoreBenchOptions {
  /** Object sizes written and read whole, in bytes (write mode). */
  sizes: readonly number[];
  /** Requests in flight at once, one row each. */
  concurrencies: readonly number[];
  /** Bytes each ranged GET reads. */
  rangeBytes: number;
  /** A row starts no request after this long. */
  durationMs: number;
  /** A row starts no request once this many bytes were asked for (it still makes one per worker). */
  maxBytes: number;
  /** Where the objects go (write mode); see {@linkcode benchPrefix}. */
  prefix: string;
  /** Read this existing object and write nothing. */
  key?: string | undefined;
  /** Aborts the measuring; what was written is removed, then the call rejects with the reason. */
  signal?: AbortSignal | undefined;
  /** Aborts the removal too, leaving objects behind (a second Ctrl-C). */
  cleanupSignal?: AbortSignal | undefined;
  /** Called as a row moves bytes: its label, bytes done, and the row's byte bound. */
  onProgress?: ((label: string, done: number, total: number) => void) | undefined;
}

/** What {@linkcode benchStore} measured in one store. */
export interface StoreBenchReport {
  store: string;
  /** The prefix written under, or null when reading `key`. */
  prefix: string | null;
  key: string | null;
  rows: BenchRow[];
  /** The smallest concurrency within {@linkcode RECOMMEND_TOLERANCE} of the best of `recommendedFrom`. */
  recommendedConcurrency: number | null;
  /** The rows the recommendation comes from: ranged GETs, or whole GETs when there were none. */
  recommendedFrom: "range" | "get" | null;
  /** Objects written (and removed). */
  objectsWritten: number;
  warnings: string[];
}

/** How far below the best throughput the recommended concurrency may be. */
export const RECOMMEND_TOLERANCE = 0.1;

/** A row makes at most this many requests, so tiny objects and no time bound still end. */
const MAX_ROW_REQUESTS = 100_000;
const DELETE_CONCURRENCY = 16;
const OP_ORDER: readonly BenchOp[] = ["put", "get", "range", "head", "conditional"];

/**
 * A size for people: `64 KiB`, `1.5 MiB`, `900 B`.
 *
 * @example
 * ```ts
 * import { formatBytes } from "./_store_bench.ts";
 * console.log(formatBytes(8 * 1024 * 1024)); // "8 MiB"
 * ```
 */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]] as const) {
    if (bytes < size) continue;
    const n = bytes / size;
    return `${Number.isInteger(n) ? n : n.toFixed(1)} ${unit}`;
  }
  return `${bytes} B`;
}

/** A new prefix for one run's objects: `bench/<UTC time>-<8 random hex digits>/`. */
export function benchPrefix(now: Date = new Date()): string {
  const time = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+/, "");
  return `bench/${time}-${toHex(crypto.getRandomValues(new Uint8Array(4)))}/`;
}

/**
 * The smallest concurrency whose `op` rows reach within {@linkcode RECOMMEND_TOLERANCE} of the best
 * throughput among them, or undefined without such rows.
 *
 * @example
 * ```ts
 * import { recommendConcurrency } from "./_store_bench.ts";
 * const row = (concurrency: number, mbPerSec: number) => ({
 *   op: "range" as const, objectBytes: 8, requestBytes: 4, concurrency, requests: 1, bytes: 4, seconds: 1,
 *   mbPerSec, requestsPerSec: 1, latencyMs: { p50: 1, p90: 1, p99: 1 },
 * });
 * console.log(recommendConcurrency([row(1, 100), row(8, 560), row(32, 600)], "range")); // 8
 * ```
 */
export function recommendConcurrency(rows: readonly BenchRow[], op: BenchOp): number | undefined {
  const candidates = rows.filter((r) => r.op === op);
  if (candidates.length === 0) return undefined;
  const best = Math.max(...candidates.map((r) => r.mbPerSec));
  const good = candidates.filter((r) => r.mbPerSec >= best * (1 - RECOMMEND_TOLERANCE));
  return Math.min(...good.map((r) => r.concurrency));
}

/**
 * Measures `store`. In write mode every object goes under `options.prefix` and every one is removed before
 * the call returns or rejects; a removal that fails throws `STORE_IO` naming the prefix. With `key`, only
 * that object is read.
 */
export async function benchStore(store: BlobStore, options: StoreBenchOptions): Promise<StoreBenchReport> {
  checkOptions(options);
  const bench = new Bench(store, options);
  const rows: BenchRow[] = [];
  if (options.key !== undefined) {
    await bench.readOnly(options.key, rows);
  } else {
    let failure: unknown;
    try {
      await bench.readWrite(rows);
    } catch (error) {
      failure = error;
    }
    await bench.removeAll(failure);
    if (failure !== undefined) throw failure;
  }
  rows.sort((a, b) =>
    OP_ORDER.indexOf(a.op) - OP_ORDER.indexOf(b.op) || a.objectBytes - b.objectBytes ||
    a.concurrency - b.concurrency
  );
  const from = rows.some((r) => r.op === "range") ? "range" : rows.some((r) => r.op === "get") ? "get" : null;
  return {
    store: store.description,
    prefix: options.key === undefined ? options.prefix : null,
    key: options.key ?? null,
    rows,
    recommendedConcurrency: from ? recommendConcurrency(rows, from) ?? null : null,
    recommendedFrom: from,
    objectsWritten: bench.objectsWritten,
    warnings: bench.warnings,
  };
}

interface RowPlan {
  op: BenchOp;
  objectBytes: number;
  requestBytes: number;
  concurrency: number;
}

class Bench {
  readonly warnings: string[] = [];
  objectsWritten = 0;
  readonly #store: BlobStore;
  readonly #options: StoreBenchOptions;
  /** Every key a PUT was started for and no DELETE has finished for. */
  readonly #written = new Set<string>();
  readonly #rowCount: number;
  #rowIndex = 0;

  constructor(store: BlobStore, options: StoreBenchOptions) {
    this.#store = store;
    this.#options = options;
    const c = options.concurrencies.length;
    this.#rowCount = options.key === undefined ? options.sizes.length * c * 2 + c + 2 : c * 2 + 2;
  }

  async readWrite(rows: BenchRow[]): Promise<void> {
    const { sizes, concurrencies, prefix, signal } = this.#options;
    for (const size of sizes) {
      const payload = randomBytes(size);
      for (const concurrency of concurrencies) {
        const stored: string[] = [];
        rows.push(
          await this.#row({ op: "put", objectBytes: size, requestBytes: size, concurrency }, async (i) => {
            const key = `${prefix}${size}/c${concurrency}/${i}`;
            this.#written.add(key);
            await this.#store.put(key, payload, { signal });
            this.objectsWritten++;
            stored.push(key);
          }),
        );
        rows.push(
          await this.#row({ op: "get", objectBytes: size, requestBytes: size, concurrency }, async (i) => {
            await this.#read(stored[i % stored.length] as string, size, undefined);
          }),
        );
        // Deleted as the run goes, so a long run never holds more than one row's objects.
        await this.#remove(stored, signal);
      }
    }
    const packBytes = Math.max(...sizes);
    const pack = `${prefix}pack-${packBytes}`;
    this.#written.add(pack);
    await this.#store.put(pack, randomBytes(packBytes), { signal });
    this.objectsWritten++;
    await this.#readRows(pack, packBytes, rows);
  }

  async readOnly(key: string, rows: BenchRow[]): Promise<void> {
    const info = await this.#store.head(key, { signal: this.#options.signal });
    if (info.status !== "ok") {
      throw new TesseraError(
        "NOT_FOUND",
        `Cannot benchmark ${this.#store.description}: no object "${key}"; name an existing object with --key`,
      );
    }
    for (const concurrency of this.#options.concurrencies) {
      rows.push(
        await this.#row(
          { op: "get", objectBytes: info.size, requestBytes: info.size, concurrency },
          () => this.#read(key, info.size, undefined),
        ),
      );
    }
    await this.#readRows(key, info.size, rows);
  }

  /** Ranged GETs at each concurrency, then HEAD and conditional GET, of one existing object. */
  async #readRows(key: string, size: number, rows: BenchRow[]): Promise<void> {
    const { rangeBytes, signal } = this.#options;
    const slices = Math.floor(size / rangeBytes);
    if (slices === 0) {
      this.warnings.push(
        `no ranged GETs: "${key}" (${size} bytes) is smaller than the range size (${rangeBytes} bytes)`,
      );
      this.#rowIndex += this.#options.concurrencies.length;
    }
    for (const concurrency of slices === 0 ? [] : this.#options.concurrencies) {
      rows.push(
        await this.#row(
          { op: "range", objectBytes: size, requestBytes: rangeBytes, concurrency },
          (i) => this.#read(key, rangeBytes, (i % slices) * rangeBytes),
        ),
      );
    }
    const latency = { objectBytes: size, requestBytes: 0, concurrency: 1 };
    let etag = "";
    rows.push(
      await this.#row({ op: "head", ...latency }, async () => {
        const info = await this.#store.head(key, { signal });
        if (info.status !== "ok") throw this.#vanished("HEAD", key);
        etag = info.etag;
      }),
    );
    let modified = 0;
    const conditional = await this.#row({ op: "conditional", ...latency }, async () => {
      const got = await this.#store.get(key, { ifNoneMatch: etag, signal });
      if (got.status === "not_found") throw this.#vanished("conditional GET", key);
      if (got.status === "ok") modified++;
    });
    rows.push(conditional);
    if (modified > 0) {
      this.warnings.push(
        `${modified} of ${conditional.requests} conditional GETs of "${key}" returned the whole object, ` +
          'not "not modified": the store ignores If-None-Match, so every replica poll reads the pointer',
      );
    }
  }

  async #read(key: string, length: number, offset: number | undefined): Promise<void> {
    const range = offset === undefined ? undefined : { offset, length };
    const got = await this.#store.get(key, { range, signal: this.#options.signal });
    if (got.status !== "ok") throw this.#vanished(range ? "ranged GET" : "GET", key);
    if (got.body.length !== length) {
      const what = range ? `bytes ${offset}+${length} of "${key}"` : `"${key}"`;
      throw new TesseraError(
        "STORE_IO",
        `Cannot benchmark ${this.#store.description}: a GET of ${what} returned ${got.body.length} bytes, ` +
          `not ${length}`,
      );
    }
  }

  #vanished(request: string, key: string): TesseraError {
    const hint = this.#options.key === undefined
      ? "it was written moments before; is something else deleting objects under bench/?"
      : "it was there when the benchmark started";
    return new TesseraError(
      "STORE_IO",
      `Cannot benchmark ${this.#store.description}: a ${request} of "${key}" found no object (${hint})`,
    );
  }

  /** Runs one row: `request(i)` for i = 0, 1, ... at the plan's concurrency, within the bounds. */
  async #row(plan: RowPlan, request: (i: number) => Promise<void>): Promise<BenchRow> {
    const { durationMs, maxBytes, signal, onProgress } = this.#options;
    this.#rowIndex++;
    const label = `${plan.op} ${formatBytes(plan.requestBytes)}, concurrency ${plan.concurrency} ` +
      `(row ${this.#rowIndex} of ${this.#rowCount})`;
    const byBytes = plan.requestBytes > 0 ? Math.ceil(maxBytes / plan.requestBytes) : MAX_ROW_REQUESTS;
    // At least one request per worker, or the row would not measure its concurrency.
    const count = Math.max(plan.concurrency, Math.min(byBytes, MAX_ROW_REQUESTS));
    const total = count * plan.requestBytes;
    const latencies: number[] = [];
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), durationMs);
    const start = performance.now();
    try {
      await forEachLimit(Array.from({ length: count }, (_, i) => i), async (i) => {
        const t0 = performance.now();
        await request(i);
        latencies.push(performance.now() - t0);
        if (plan.requestBytes > 0) onProgress?.(label, latencies.length * plan.requestBytes, total);
      }, {
        concurrency: plan.concurrency,
        signal: signal ? AbortSignal.any([signal, stop.signal]) : stop.signal,
      });
    } catch (error) {
      signal?.throwIfAborted();
      if (!stop.signal.aborted || error !== stop.signal.reason) throw error;
    } finally {
      clearTimeout(timer);
    }
    const seconds = (performance.now() - start) / 1000;
    const bytes = latencies.length * plan.requestBytes;
    latencies.sort((a, b) => a - b);
    return {
      ...plan,
      requests: latencies.length,
      bytes,
      seconds,
      mbPerSec: bytes / 1e6 / seconds,
      requestsPerSec: latencies.length / seconds,
      latencyMs: {
        p50: percentile(latencies, 50),
        p90: percentile(latencies, 90),
        p99: percentile(latencies, 99),
      },
    };
  }

  async #remove(keys: readonly string[], signal: AbortSignal | undefined): Promise<void> {
    await forEachLimit(keys, async (key) => {
      await this.#store.delete(key, { signal });
      this.#written.delete(key);
    }, { concurrency: DELETE_CONCURRENCY, signal });
  }

  /** Removes every object the run wrote; when the store lists, until a listing of the prefix is empty. */
  async removeAll(failure: unknown): Promise<void> {
    const { prefix, cleanupSignal: signal } = this.#options;
    try {
      await this.#remove([...this.#written], signal);
      if (!this.#store.capabilities.list) return;
      // An aborted PUT may still land after its DELETE; a few listings catch it.
      for (let pass = 0;; pass++) {
        const left: string[] = [];
        for await (const item of this.#store.list(prefix, { signal })) {
          if (item.type === "object") left.push(item.key);
        }
        if (left.length === 0) return;
        if (pass === 3) throw new Error(`${left.length} objects are still listed, such as "${left[0]}"`);
        await this.#remove(left, signal);
        await sleep(100 * (pass + 1), signal);
      }
    } catch (error) {
      const stopped = failure === undefined ? "" : errorMessage(failure);
      const after = stopped === "" || stopped === errorMessage(error)
        ? ""
        : ` (after the benchmark stopped: ${stopped})`;
      throw new TesseraError(
        "STORE_IO",
        `Cannot remove the benchmark's objects under "${prefix}" in ${this.#store.description}: ` +
          `${errorMessage(error)}${after}; list what is left with "tessera store ls STORE ${prefix}" ` +
          `and delete it with "tessera store rm STORE KEY..."`,
        { cause: error },
      );
    }
  }
}

function checkOptions(options: StoreBenchOptions): void {
  const positive = (n: number) => Number.isSafeInteger(n) && n > 0;
  const problem = options.concurrencies.length === 0 || !options.concurrencies.every(positive)
    ? "concurrencies must be whole numbers > 0, at least one"
    : !positive(options.rangeBytes) || !(options.durationMs > 0) || !(options.maxBytes > 0)
    ? "rangeBytes, durationMs and maxBytes must be > 0"
    : options.key !== undefined
    ? undefined
    : options.sizes.length === 0 || !options.sizes.every(positive)
    ? "sizes must be whole numbers > 0, at least one"
    : options.rangeBytes > Math.max(...options.sizes)
    ? "rangeBytes must be at most the largest size"
    : !options.prefix.endsWith("/")
    ? 'prefix must end with "/"'
    : undefined;
  if (problem) throw new RangeError(`Cannot benchmark a store: ${problem}`);
}

/** The value at percentile `p` of ascending `sorted` (nearest rank), 0 when empty. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1] as number;
}

// Random, so neither compression on the way nor deduplication in the store flatters the numbers.
function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536));
  return bytes;
}
