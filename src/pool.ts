/**
 * The one way Tessera runs many asynchronous jobs with a bound on how many are in flight: uploads,
 * downloads, chunk reads. Every pipeline uses these two functions instead of writing its own workers.
 *
 * @module
 */

/** Options of {@linkcode forEachLimit} and {@linkcode mapLimit}. */
export interface LimitOptions {
  /** Jobs in flight at once; at least 1. A function is asked again before each job starts, so the
   * bound can change while the run goes on (jobs in flight are never stopped). @default {8} */
  concurrency?: number | (() => number) | undefined;
  /** Stops taking new items once aborted; the run then rejects with the abort reason. */
  signal?: AbortSignal | undefined;
}

/**
 * Calls `work` on every item, at most `concurrency` at once, in the items' order. After the first failure
 * no new item starts; the call waits for the jobs in flight and rejects with that first error.
 *
 * @example
 * ```ts
 * import { forEachLimit } from "./pool.ts";
 * const seen: number[] = [];
 * await forEachLimit([1, 2, 3], async (n) => { seen.push(n); }, { concurrency: 2 });
 * ```
 */
export async function forEachLimit<T>(
  items: Iterable<T>,
  work: (item: T, index: number) => Promise<void>,
  options: LimitOptions = {},
): Promise<void> {
  const list = Array.isArray(items) ? items as readonly T[] : [...items];
  const { signal } = options;
  if (typeof options.concurrency === "function") {
    return await adaptive(list, work, options.concurrency, signal);
  }
  const width = Math.max(1, Math.min(list.length, Math.floor(options.concurrency ?? 8)));
  let next = 0;
  let failed = false;
  let firstError: unknown;
  const worker = async () => {
    while (!failed && next < list.length) {
      if (signal?.aborted) {
        if (!failed) {
          failed = true;
          firstError = signal.reason;
        }
        return;
      }
      const index = next++;
      try {
        await work(list[index] as T, index);
      } catch (error) {
        if (!failed) {
          failed = true;
          firstError = error;
        }
      }
    }
  };
  signal?.throwIfAborted();
  await Promise.all(Array.from({ length: width }, worker));
  if (failed) throw firstError;
}

// forEachLimit with a bound that may change: starts jobs while fewer than `width()` run.
async function adaptive<T>(
  list: readonly T[],
  work: (item: T, index: number) => Promise<void>,
  width: () => number,
  signal: AbortSignal | undefined,
): Promise<void> {
  signal?.throwIfAborted();
  const running = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  for (let index = 0; index < list.length && !failure; index++) {
    while (running.size >= Math.max(1, Math.floor(width())) && !failure) await Promise.race(running);
    if (failure) break;
    if (signal?.aborted) {
      failure = { error: signal.reason };
      break;
    }
    const job: Promise<void> = work(list[index] as T, index).then(
      () => {},
      (error) => {
        failure ??= { error };
      },
    ).finally(() => running.delete(job));
    running.add(job);
  }
  await Promise.all(running);
  if (failure) throw failure.error;
}

/** Like {@linkcode forEachLimit}, and returns `work`'s results in the items' order. */
export async function mapLimit<T, R>(
  items: Iterable<T>,
  work: (item: T, index: number) => Promise<R>,
  options: LimitOptions = {},
): Promise<R[]> {
  const list = Array.isArray(items) ? items as readonly T[] : [...items];
  const results: R[] = new Array(list.length);
  await forEachLimit(list, async (item, index) => {
    results[index] = await work(item, index);
  }, options);
  return results;
}
