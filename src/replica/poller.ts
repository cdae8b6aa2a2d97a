/**
 * The background poller of a replica of a database: every interval it checks the pointer (a conditional
 * read, so an unchanged pointer costs one 304) and prepares the snapshot it names when that is newer, off the
 * query path. It counts its checks and failures for `status()` and reports them as events.
 *
 * @module
 */

import { TesseraError } from "../errors.ts";
import type { BlobStore } from "../store/types.ts";
import type { EngineSnapshot, ReplicaEngine } from "./engine.ts";
import type { ReplicaEmitter } from "./events.ts";
import { checkFailure, checkPointer, type FirstSnapshot } from "./pointer_check.ts";

/** What the poller keeps up to date: the newest prepared snapshot, which the replica holds. */
export interface NewestSnapshot {
  /** The newest prepared snapshot, if any. */
  newest(): EngineSnapshot | undefined;
  /** Makes `snapshot` the newest prepared, letting the previous one go. */
  replace(snapshot: EngineSnapshot): void;
  /** A check that started at `startedMs` succeeded: the newest prepared was the store's newest then. */
  confirm(startedMs: number): void;
}

/** What a poller has counted, for `status()`. */
export interface PollStats {
  checks: number;
  /** Checks answered "not modified" (a 304 from S3). */
  notModified: number;
  lastCheckMs: number | undefined;
  lastSuccessMs: number | undefined;
  /** Failed checks in a row; 0 once one succeeds. */
  consecutiveFailures: number;
  lastError: { code: string; message: string; atMs: number } | undefined;
}

/** Options of {@linkcode Poller}. */
export interface PollerOptions {
  store: BlobStore;
  /** The database's name in `store`. */
  name: string;
  engine: Pick<ReplicaEngine, "prepare">;
  snapshots: NewestSnapshot;
  events: ReplicaEmitter;
  /** The time between checks; 0: no polling, only checks asked for. */
  intervalMs: number;
  /** Ends every check in flight, for good. */
  signal: AbortSignal;
}

function unrefTimer(handle: unknown): void {
  if (typeof (handle as { unref?: unknown })?.unref === "function") {
    (handle as { unref(): void }).unref();
    return;
  }
  const deno = (globalThis as { Deno?: { unrefTimer?: (id: number) => void } }).Deno;
  if (typeof handle === "number") deno?.unrefTimer?.(handle);
}

/** Checks a database's pointer, on a timer and on demand, one check at a time. */
export class Poller {
  readonly #options: PollerOptions;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #etag: string | undefined;
  #newestPointerSha = "";
  #checking: Promise<boolean> | undefined;
  #checks = 0;
  #notModified = 0;
  #lastCheckMs: number | undefined;
  #lastSuccessMs: number | undefined;
  #failures = 0;
  #lastError: PollStats["lastError"];

  constructor(options: PollerOptions) {
    this.#options = options;
  }

  /** A check is in flight. */
  get checking(): boolean {
    return this.#checking !== undefined;
  }

  /** When the last successful check ended. */
  get lastSuccessMs(): number | undefined {
    return this.#lastSuccessMs;
  }

  stats(): PollStats {
    return {
      checks: this.#checks,
      notModified: this.#notModified,
      lastCheckMs: this.#lastCheckMs,
      lastSuccessMs: this.#lastSuccessMs,
      consecutiveFailures: this.#failures,
      lastError: this.#lastError,
    };
  }

  /** Checks every interval from now on (unless the interval is 0). The timer keeps no process alive. */
  startPolling(): void {
    if (this.#closed || this.#options.intervalMs === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.check(false).catch(() => {}).finally(() => this.startPolling());
    }, this.#options.intervalMs);
    unrefTimer(this.#timer);
  }

  /** Runs a check, or joins the one in flight (`fresh`: then runs another after it). True when it prepared
   * a newer snapshot. */
  async check(fresh: boolean): Promise<boolean> {
    if (this.#checking) {
      const running = this.#checking;
      if (!fresh) return await running;
      await running.catch(() => {});
      const again = this.#checking as Promise<boolean> | undefined;
      if (again && again !== running) return await again;
    }
    const run = this.checkOnce().finally(() => {
      if (this.#checking === run) this.#checking = undefined;
    });
    this.#checking = run;
    return await run;
  }

  /**
   * Runs one check now, joining none: reads the pointer (conditionally) and prepares the snapshot it names
   * when that is newer. `first`: the pointer and manifest, read already (when opening).
   */
  async checkOnce(first?: FirstSnapshot): Promise<boolean> {
    const { store, name, engine, snapshots, events, signal } = this.#options;
    const started = Date.now();
    this.#checks++;
    this.#lastCheckMs = started;
    try {
      const held = () => ({
        sequence: snapshots.newest()?.manifest.sequence ?? 0,
        manifestSha: this.#newestPointerSha,
      });
      const found = await checkPointer(store, name, held, { etag: this.#etag, first, signal });
      if (found.status === "not_modified") this.#notModified++;
      if (found.status !== "newer") {
        if (found.status === "unchanged") this.#etag = found.etag;
        this.#succeeded(started);
        return false;
      }
      const snapshot = await engine.prepare(found.loaded.manifest, signal);
      if (this.#closed) {
        snapshot.release();
        return false;
      }
      snapshots.replace(snapshot);
      this.#etag = found.etag;
      this.#newestPointerSha = found.manifestSha;
      this.#succeeded(started);
      events.emit("snapshot", {
        sequence: snapshot.manifest.sequence,
        chunksFetched: snapshot.chunksFetched,
        preparedMs: snapshot.preparedMs,
      });
      return true;
    } catch (thrown) {
      if (this.#closed || signal.aborted) throw thrown;
      const error = checkFailure(thrown, store, name);
      const at = Date.now();
      this.#failures++;
      const code = error instanceof TesseraError ? error.code : (error as { code?: string })?.code ?? "ERROR";
      this.#lastError = { code: String(code), message: (error as Error)?.message ?? String(error), atMs: at };
      events.emit("error", { error: error instanceof Error ? error : new Error(String(error)), atMs: at });
      throw error;
    }
  }

  /** Stops the timer; a check in flight prepares nothing more (abort the signal to end it). */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #succeeded(started: number): void {
    this.#lastSuccessMs = Date.now();
    this.#failures = 0;
    this.#options.snapshots.confirm(started);
  }
}
