/**
 * A closed-loop load generator: `concurrency` workers, each sending its next request the moment its last
 * one is answered, for a fixed time or a fixed number of requests. Closed loop means the offered load
 * follows the server: a slow answer delays the next request instead of queueing more, so the figures are
 * the throughput at that concurrency and the latency each request saw, never an arrival rate the server
 * could not keep up with. Every latency is recorded; the percentiles come from all of them.
 *
 * @module
 */

/** Sends request number `index` (counted from 0 across all workers) and resolves once it is answered and
 * checked; a rejection stops the run. */
export type Send = (index: number) => Promise<void>;

/** Options of {@linkcode runLoad}. */
export interface LoadOptions {
  /** Requests in flight at once. */
  concurrency: number;
  /** Start no request after this many milliseconds. At least one of this and `requests` is needed. */
  durationMs?: number | undefined;
  /** Send this many requests, then stop. */
  requests?: number | undefined;
  /** The index of the first request, so a measured run can continue where its warm-up stopped.
   * @default {0} */
  firstIndex?: number | undefined;
}

/** What one run measured. */
export interface LoadResult {
  concurrency: number;
  /** Requests answered. */
  requests: number;
  /** From the first request sent to the last answer. */
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The index the next run should start at. */
  nextIndex: number;
}

/** The `p`th percentile of ascending `sorted`, by linear interpolation between closest ranks. */
export function quantile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const at = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

/**
 * Runs `send` from `options.concurrency` workers until the time or the count is reached, and returns the
 * throughput and latency percentiles. The first failed request stops every worker; once those in flight
 * settle, it is thrown, with the request's index.
 *
 * @example Ten concurrent requests for a second
 * ```ts ignore
 * import { runLoad } from "./http_load.ts";
 *
 * const result = await runLoad(async () => {
 *   const response = await fetch("http://127.0.0.1:8080/healthz");
 *   if (!response.ok) throw new Error(`healthz answered ${response.status}`);
 *   await response.body?.cancel();
 * }, { concurrency: 10, durationMs: 1000 });
 * console.log(result.perSecond, result.p99Ms);
 * ```
 */
export async function runLoad(send: Send, options: LoadOptions): Promise<LoadResult> {
  const { concurrency, durationMs, requests: limit } = options;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`Cannot run a load of concurrency ${concurrency}: it takes a whole number ≥ 1`);
  }
  if (durationMs === undefined && limit === undefined) {
    throw new TypeError("Cannot run a load without an end: give durationMs or requests");
  }
  const first = options.firstIndex ?? 0;
  const latencies: number[] = [];
  let next = first;
  let failure: { index: number; error: unknown } | undefined;
  const started = performance.now();
  const deadline = durationMs === undefined ? Infinity : started + durationMs;
  const end = limit === undefined ? Infinity : first + limit;

  const worker = async () => {
    while (failure === undefined && next < end) {
      const sentAt = performance.now();
      if (sentAt >= deadline) return;
      const index = next++;
      try {
        await send(index);
      } catch (error) {
        failure ??= { index, error };
        return;
      }
      latencies.push(performance.now() - sentAt);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  if (failure !== undefined) {
    const { index, error } = failure;
    throw new Error(`Request ${index} of the load failed: ${(error as Error).message ?? error}`, {
      cause: error,
    });
  }
  const sorted = Float64Array.from(latencies).sort();
  return {
    concurrency,
    requests: latencies.length,
    seconds,
    perSecond: latencies.length / seconds,
    p50Ms: quantile(sorted, 50),
    p99Ms: quantile(sorted, 99),
    maxMs: sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1]!,
    nextIndex: next,
  };
}
