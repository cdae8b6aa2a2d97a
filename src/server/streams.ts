/**
 * The streams clients hold between requests, found by baton. A baton is 144 random bits, good for one
 * request: each response hands out a new one, so a baton cannot be guessed, replayed or used by two requests
 * at once. A stream left idle past `idleMs` is closed (rolling back its transaction); its baton is remembered
 * for `rememberMs` so that a late client hears `STREAM_EXPIRED` rather than `BATON_INVALID`.
 *
 * @module
 */

import { toBase64 } from "../bytes.ts";
import { ServerError } from "./errors.ts";
import type { HranaStream } from "./hrana_stream.ts";

/** Options of {@linkcode StreamTable}. */
export interface StreamTableOptions {
  /** Idle time after which a stream is closed. @default {10000} */
  idleMs?: number | undefined;
  /** How long an expired baton is still recognised. @default {300000} */
  rememberMs?: number | undefined;
  /**
   * Most streams held between requests. Each one in a transaction holds a SQLite connection and its page
   * cache (in the wasm engine, in the one wasm heap), so the bound is memory as much as count.
   * @default {128}
   */
  maxStreams?: number | undefined;
}

interface Held {
  stream: HranaStream;
  database: string;
  expiresAt: number;
}

const REMEMBERED_MAX = 100_000;

/** Held streams, by default: each in a transaction holds a SQLite connection and its page cache. */
export const DEFAULT_MAX_STREAMS = 128;

/** Streams between requests, by baton. */
export class StreamTable {
  readonly #idleMs: number;
  readonly #rememberMs: number;
  readonly #maxStreams: number;
  // Both maps are in order of expiry: entries are always added with the latest time.
  readonly #held = new Map<string, Held>();
  readonly #expired = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #reserved = 0;

  constructor(options: StreamTableOptions = {}) {
    this.#idleMs = options.idleMs ?? 10_000;
    this.#rememberMs = options.rememberMs ?? 300_000;
    this.#maxStreams = options.maxStreams ?? DEFAULT_MAX_STREAMS;
  }

  /** Streams held now. */
  get size(): number {
    return this.#held.size;
  }

  /**
   * Reserves room for a new stream, until {@linkcode StreamTable.unreserve}: throws `TOO_MANY_STREAMS`
   * (503) when held and reserved streams fill the table. Pipelines that arrive together each reserve
   * before they run, so together they cannot hold more than the limit. `taken`: for a stream taken
   * out of the table for a request, which keeps its place without a check.
   */
  reserve(options: { taken?: boolean } = {}): void {
    this.#sweep();
    // A stream taken out for a request keeps its place: it is not refused room to come back.
    if (!options.taken && this.#held.size + this.#reserved >= this.#maxStreams) {
      throw new ServerError(
        503,
        "TOO_MANY_STREAMS",
        `The server holds ${this.#maxStreams} streams, its limit: close transactions, or retry later`,
      );
    }
    this.#reserved++;
  }

  /** Gives back the room {@linkcode StreamTable.reserve} took (the stream is held now, or never will be). */
  unreserve(): void {
    this.#reserved--;
  }

  /** Takes the stream `baton` names on `database` out of the table, for one request. */
  take(baton: string, database: string): HranaStream {
    this.#sweep();
    const held = this.#held.get(baton);
    if (held === undefined || held.database !== database) {
      if (this.#expired.has(baton)) {
        throw new ServerError(
          400,
          "STREAM_EXPIRED",
          `The stream was closed after ${this.#idleMs} ms without a request; its transaction was rolled back`,
        );
      }
      throw new ServerError(400, "BATON_INVALID", "The baton names no stream of this database");
    }
    this.#held.delete(baton);
    return held.stream;
  }

  /** Holds `stream` until its next request; returns the baton that names it. */
  put(stream: HranaStream, database: string): string {
    if (this.#closed) {
      stream.close();
      throw new ServerError(503, "SHUTTING_DOWN", "The server is shutting down");
    }
    const bytes = new Uint8Array(18);
    crypto.getRandomValues(bytes);
    const baton = toBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_");
    this.#held.set(baton, { stream, database, expiresAt: Date.now() + this.#idleMs });
    this.#schedule();
    return baton;
  }

  /** Closes every stream and stops the timer. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const held of this.#held.values()) held.stream.close();
    this.#held.clear();
    this.#expired.clear();
  }

  #sweep(): void {
    const now = Date.now();
    for (const [baton, held] of this.#held) {
      if (held.expiresAt > now) break;
      this.#held.delete(baton);
      held.stream.close();
      this.#expired.set(baton, now + this.#rememberMs);
    }
    for (const [baton, forgetAt] of this.#expired) {
      if (forgetAt > now && this.#expired.size <= REMEMBERED_MAX) break;
      this.#expired.delete(baton);
    }
  }

  // A timer closes idle streams even when no request comes, so their snapshots and connections go.
  #schedule(): void {
    if (this.#timer !== undefined || this.#closed) return;
    const first = this.#held.values().next().value;
    if (first === undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#sweep();
      this.#schedule();
    }, Math.max(10, first.expiresAt - Date.now() + 5));
  }
}
