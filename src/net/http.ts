/**
 * One HTTP exchange with a timeout that covers the wait for headers and every stall while reading the body,
 * and a retry loop around it. Shared by the S3 client and the read-only HTTP store; web APIs only.
 *
 * @module
 */

import { concatBytes } from "../bytes.ts";
import { backoffDelay, type RetryPolicy, sleep } from "./backoff.ts";
import { errorMessage } from "../errors.ts";

/** A request ready to send; built anew for every try so that signatures carry a fresh date. */
export interface HttpRequest {
  method: string;
  url: string;
  headers: Headers;
  body?: Uint8Array | undefined;
}

/** A response with its body read whole. */
export interface HttpResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

/** Why one try produced no response. */
export interface AttemptFailure {
  /** `timeout`: no headers or no body bytes within the timeout; `network`: the connection failed;
   * `truncated`: the body ended before its `Content-Length`. */
  kind: "timeout" | "network" | "truncated";
  /** A sentence describing the failure, safe to show (it never holds request headers). */
  message: string;
  /** The runtime's own error, when there was one. */
  cause?: unknown;
}

/** What {@linkcode sendWithRetries} ended with: the last response, or the last failure. */
export type SendOutcome =
  | { ok: true; response: HttpResponse; attempts: number }
  | { ok: false; failure: AttemptFailure; attempts: number };

/** Options of {@linkcode sendWithRetries}. */
export interface SendOptions {
  policy: RetryPolicy;
  /** Says whether a response that arrived is worth another try (a 503, say). */
  shouldRetry: (response: HttpResponse) => boolean;
  signal?: AbortSignal | undefined;
  /** The fetch to use. @default {globalThis.fetch} */
  fetch?: typeof fetch | undefined;
  /** The source of jitter, replaceable in tests. @default {Math.random} */
  random?: (() => number) | undefined;
}

class AttemptFailed extends Error {
  constructor(readonly failure: AttemptFailure) {
    super(failure.message);
  }
}

/**
 * Sends a request, retrying network failures, timeouts, truncated bodies and responses `shouldRetry`
 * accepts, with full-jitter backoff, up to `policy.maxAttempts` tries. An abort of `signal` rejects at
 * once with the signal's reason and is never retried.
 */
export async function sendWithRetries(
  prepare: (attempt: number) => Promise<HttpRequest> | HttpRequest,
  options: SendOptions,
): Promise<SendOutcome> {
  const { policy, signal } = options;
  for (let attempt = 1;; attempt++) {
    signal?.throwIfAborted();
    let outcome: SendOutcome;
    try {
      const request = await prepare(attempt);
      const response = await fetchOnce(request, policy.timeoutMs, signal, options.fetch ?? fetch);
      outcome = { ok: true, response, attempts: attempt };
      if (!options.shouldRetry(response)) return outcome;
    } catch (error) {
      if (!(error instanceof AttemptFailed)) throw error;
      outcome = { ok: false, failure: error.failure, attempts: attempt };
    }
    if (attempt >= policy.maxAttempts) return outcome;
    await sleep(backoffDelay(attempt - 1, policy, options.random), signal);
  }
}

/** True for the statuses a client should try again: 408, 429 and every 5xx except 501 Not Implemented. */
export function isRetriableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status !== 501);
}

async function fetchOnce(
  request: HttpRequest,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  fetchFn: typeof fetch,
): Promise<HttpResponse> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  let timedOut = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new DOMException(`No progress within ${timeoutMs} ms`, "TimeoutError"));
    }, timeoutMs);
  };
  const what = `${request.method} ${describeUrl(request.url)}`;
  let phase = "waiting for the response";
  try {
    arm();
    const response = await fetchFn(request.url, {
      method: request.method,
      headers: request.headers,
      // TypeScript will not take a Uint8Array over a SharedArrayBuffer; ours never are.
      body: (request.body ?? null) as BodyInit | null,
      signal: controller.signal,
    });
    phase = "reading the response body";
    arm();
    const body = await readBody(response, arm);
    const expected = expectedLength(request.method, response);
    if (expected !== undefined && body.length !== expected) {
      throw new AttemptFailed({
        kind: "truncated",
        message: `${what}: the body ended after ${body.length} of ${expected} bytes`,
      });
    }
    return { status: response.status, headers: response.headers, body };
  } catch (error) {
    if (error instanceof AttemptFailed) throw error;
    if (signal?.aborted) throw signal.reason;
    if (timedOut) {
      throw new AttemptFailed({
        kind: "timeout",
        message: `${what}: no progress within ${timeoutMs} ms while ${phase}`,
      });
    }
    const reason = errorMessage(error);
    throw new AttemptFailed({
      kind: "network",
      message: `${what}: ${phase} failed: ${reason}`,
      cause: error,
    });
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

async function readBody(response: Response, onProgress: () => void): Promise<Uint8Array> {
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const parts: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    onProgress();
  }
  return concatBytes(parts);
}

// A body that fetch decoded (gzip and the like) has no relation to Content-Length, and some responses
// carry a Content-Length that describes the resource rather than this (empty) body.
function expectedLength(method: string, response: Response): number | undefined {
  if (method === "HEAD" || response.status === 204 || response.status === 304) return undefined;
  const encoding = response.headers.get("content-encoding");
  if (encoding && encoding !== "identity") return undefined;
  const header = response.headers.get("content-length");
  if (header === null || !/^\d+$/.test(header)) return undefined;
  return Number(header);
}

/** The URL without its query string, which may hold a presigned signature. */
export function describeUrl(url: string): string {
  const at = url.indexOf("?");
  return at === -1 ? url : url.slice(0, at);
}
