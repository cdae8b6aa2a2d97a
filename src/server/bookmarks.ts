/**
 * Read your writes: every response says which snapshot served it (`Tessera-Sequence`,
 * `Tessera-Snapshot-Ctime`), and a request may ask for at least a sequence (`Tessera-Min-Sequence`), waiting
 * up to a bound for the replica to reach it. `bookmarkFetch` wraps `fetch` so that a @libsql/client does both
 * through its `fetch` option.
 *
 * @module
 */

import type { Replica } from "../replica/replica.ts";
import { ServerError } from "./errors.ts";

/** Response header: the sequence of the snapshot that served the request. */
export const SEQUENCE_HEADER = "Tessera-Sequence";
/** Response header: when the source last changed before that snapshot (RFC 3339). */
export const CTIME_HEADER = "Tessera-Snapshot-Ctime";
/** Request header: the lowest sequence the request may be served from. */
export const MIN_SEQUENCE_HEADER = "Tessera-Min-Sequence";
/** Request header: how long to wait for it, in ms (at most the server's bound). */
export const WAIT_HEADER = "Tessera-Wait-Ms";

/** A snapshot a request was served from: its sequence and source change time (ms since the epoch). */
export interface Served {
  sequence: number;
  ctime: number;
}

/**
 * The snapshot `replica` serves now. Read before a request's statements run, it is never newer than the
 * snapshot they read (sequences only grow), so a client that trusts it never believes it read a write it
 * did not.
 */
export function servedNow(replica: Replica): Served {
  return { sequence: replica.sequence, ctime: replica.snapshotCtime };
}

/** The older of two served snapshots. */
export function older(a: Served, b: Served): Served {
  return b.sequence < a.sequence ? b : a;
}

/** The headers naming the snapshot a request was served from. */
export function snapshotHeaders(served: Served): Record<string, string> {
  return { [SEQUENCE_HEADER]: String(served.sequence), [CTIME_HEADER]: rfc3339(served.ctime) };
}

// Most answers name the snapshot the one before did: its time is formatted once.
let lastCtime = Number.NaN;
let lastCtimeText = "";

function rfc3339(ctime: number): string {
  if (ctime !== lastCtime) {
    lastCtime = ctime;
    lastCtimeText = Number.isFinite(ctime) && ctime > 0 ? new Date(ctime).toISOString() : "";
  }
  return lastCtimeText;
}

/** The error of a request whose minimum sequence the replica did not reach. */
export function notReached(served: number, min: number, detail: string): ServerError {
  return new ServerError(
    412,
    "BOOKMARK_NOT_REACHED",
    `The replica serves sequence ${served}, not yet ${min}, ${detail}: retry, or read from the primary`,
  );
}

/** Reads the minimum sequence and wait of a request; throws `BAD_REQUEST` for values that are not numbers. */
export function readBookmark(
  headers: { get(name: string): string | null | undefined },
  maxWaitMs: number,
): { min: number; waitMs: number } | undefined {
  const min = headers.get(MIN_SEQUENCE_HEADER);
  if (min === null || min === undefined || min === "") return undefined;
  if (!/^\d{1,15}$/.test(min.trim())) {
    throw new ServerError(
      400,
      "BAD_REQUEST",
      `${MIN_SEQUENCE_HEADER} is "${min.slice(0, 40)}": expected a sequence number`,
    );
  }
  const wait = headers.get(WAIT_HEADER);
  let waitMs = maxWaitMs;
  if (wait !== null && wait !== undefined && wait !== "") {
    if (!/^\d{1,9}$/.test(wait.trim())) {
      throw new ServerError(
        400,
        "BAD_REQUEST",
        `${WAIT_HEADER} is "${wait.slice(0, 40)}": expected milliseconds`,
      );
    }
    waitMs = Math.min(Number(wait), maxWaitMs);
  }
  return { min: Number(min), waitMs };
}

/** Refreshes shared by every request waiting on one replica: one check of the store at a time. */
export class Catchup {
  readonly #running = new WeakMap<Replica, Promise<unknown>>();

  /**
   * Waits until `replica` serves `min` or later, checking the store at most every `pollMs`; throws
   * `BOOKMARK_NOT_REACHED` (412) after `waitMs`, and `SHUTTING_DOWN` (503) as soon as `signal` aborts or
   * the replica closes.
   */
  async reach(
    replica: Replica,
    min: number,
    waitMs: number,
    options: { signal?: AbortSignal | undefined; pollMs?: number } = {},
  ): Promise<void> {
    const { signal, pollMs = 50 } = options;
    const deadline = Date.now() + waitMs;
    while (replica.sequence < min) {
      if (signal?.aborted || replica.closed) {
        throw new ServerError(503, "SHUTTING_DOWN", "The server is shutting down");
      }
      const left = deadline - Date.now();
      if (left <= 0) throw notReached(replica.sequence, min, `after waiting ${waitMs} ms`);
      let running = this.#running.get(replica);
      if (running === undefined) {
        running = replica.refresh(1).catch(() => {}).finally(() => this.#running.delete(replica));
        this.#running.set(replica, running);
      }
      await Promise.race([running, sleep(left, signal)]);
      if (replica.sequence < min) await sleep(Math.min(pollMs, Math.max(0, deadline - Date.now())), signal);
    }
  }
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done);
  });
}

/** Options of {@linkcode bookmarkFetch}. */
export interface BookmarkFetchOptions {
  /** The lowest sequence requests may be served from (read before each request), or undefined for any. */
  minSequence?: () => number | undefined;
  /** Called with the sequence every response was served from. */
  onSequence?: (sequence: number) => void;
  /** How long the server may wait for the sequence, in ms. */
  waitMs?: number;
  /** The fetch to wrap. @default {globalThis.fetch} */
  fetch?: (request: Request) => Promise<Response>;
}

/**
 * A `fetch` for @libsql/client's `fetch` option that asks the server for at least a sequence and reports
 * the sequence each response was served from.
 *
 * @example Read your writes through a replica server
 * ```ts ignore
 * import { createClient } from "@libsql/client";
 * import { bookmarkFetch } from "./bookmarks.ts";
 *
 * let wrote = 0; // the sequence holding the application's last write (ReplicatingClient.bookmark())
 * const client = createClient({
 *   url: "http://127.0.0.1:8080/app/",
 *   fetch: bookmarkFetch({ minSequence: () => wrote }),
 * });
 * ```
 */
export function bookmarkFetch(options: BookmarkFetchOptions = {}): (request: Request) => Promise<Response> {
  const inner = options.fetch ?? ((request: Request) => fetch(request));
  return async (request: Request) => {
    const min = options.minSequence?.();
    if (min !== undefined) request.headers.set(MIN_SEQUENCE_HEADER, String(min));
    if (options.waitMs !== undefined) request.headers.set(WAIT_HEADER, String(options.waitMs));
    const response = await inner(request);
    const served = response.headers.get(SEQUENCE_HEADER);
    if (served !== null && served !== "" && options.onSequence) options.onSequence(Number(served));
    return response;
  };
}
