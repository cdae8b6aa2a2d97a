/**
 * Retry timing: full-jitter exponential backoff and an abortable sleep.
 *
 * @module
 */

/** How many times to try a request and how long to wait between tries. */
export interface RetryPolicy {
  /** Tries in all, the first included. @default {5} */
  maxAttempts: number;
  /** The backoff ceiling of the first retry, in milliseconds. @default {100} */
  baseDelayMs: number;
  /** The largest wait between two tries, in milliseconds. @default {5000} */
  maxDelayMs: number;
  /** How long one try may wait for response headers, or between two reads of its body. @default {30000} */
  timeoutMs: number;
}

/** The policy used where a caller sets none of the fields. */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 5,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
  timeoutMs: 30_000,
});

/**
 * Fills the fields a caller left out with {@linkcode DEFAULT_RETRY_POLICY} and checks the rest.
 *
 * @example
 * ```ts
 * import { resolveRetryPolicy } from "./backoff.ts";
 * const policy = resolveRetryPolicy({ maxAttempts: 2 });
 * console.log(policy.maxAttempts, policy.timeoutMs); // 2 30000
 * ```
 */
export function resolveRetryPolicy(
  partial: { [K in keyof RetryPolicy]?: number | undefined } = {},
): RetryPolicy {
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY };
  for (const name of Object.keys(DEFAULT_RETRY_POLICY) as (keyof RetryPolicy)[]) {
    const value = partial[name];
    if (value === undefined) continue;
    if (!Number.isFinite(value) || value < 0) {
      throw new RangeError(`Cannot use retry option "${name}": expected a non-negative number, got ${value}`);
    }
    policy[name] = value;
  }
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) {
    throw new RangeError(
      `Cannot use retry option "maxAttempts": expected an integer >= 1, got ${policy.maxAttempts}`,
    );
  }
  return policy;
}

/**
 * The wait before retry number `retry` (0 for the first retry): a uniformly random time between zero and
 * `min(maxDelayMs, baseDelayMs * 2^retry)`, so that many clients failing together spread out.
 */
export function backoffDelay(retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(retry, 30));
  return Math.floor(random() * ceiling);
}

/** Waits `ms` milliseconds; rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
