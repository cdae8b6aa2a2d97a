/**
 * Noticing commits to the source: filesystem events on its directory (under Deno, a size and time check in
 * their place), a slower check that catches what events miss, and the debounce that decides when to capture.
 *
 * @module
 */

import { type FSWatcher, watch as watchFs } from "node:fs";
import { stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import process from "node:process";

// How often a Deno replicator checks the source for changes in place of filesystem events (well under the
// default debounce, so a quiet moment can be seen).
const DENO_WATCH_POLL_MS = 50;
// How often polling tries again a source whose capture failed, while the source looks the same.
const CAPTURE_RETRY_MS = 2000;

/** The debounce of {@linkcode SourceWatch}, in ms. */
export interface DebounceOptions {
  /** Quiet time after a change before capturing. */
  debounceMs: number;
  /** Longest wait after a change while changes keep coming. */
  maxDelayMs: number;
}

/** What {@linkcode SourceWatch} asks of the replicator. */
export interface SourceWatchHooks {
  /** Replication stopped: changes are ignored. */
  closed(): boolean;
  /** A capture is running (it sees any change made so far). */
  capturing(): boolean;
  /** The debounce is over: capture now. */
  due(): void;
}

/** Watches one database file and tells the replicator when to capture it. */
export class SourceWatch {
  readonly #path: string;
  readonly #options: DebounceOptions;
  readonly #hooks: SourceWatchHooks;
  #watcher: FSWatcher | undefined;
  #pollTimer: ReturnType<typeof setInterval> | undefined;
  #changedAt = 0;
  #lastChangeAt = 0;
  #dueTimer: ReturnType<typeof setTimeout> | undefined;
  // The source as the last successful capture found it.
  #captured = "";
  // The source as it was when a capture last failed: polling retries it at most every CAPTURE_RETRY_MS
  // (an empty or missing file would otherwise start a capture, and a reader process, at every poll).
  #failed: { key: string; ms: number } | undefined;
  #polling = false;
  #watchKey = "";
  #watching = false;

  constructor(path: string, options: DebounceOptions, hooks: SourceWatchHooks) {
    this.#path = path;
    this.#options = options;
    this.#hooks = hooks;
  }

  /** Starts listening to filesystem events on the database's directory: the file, its -wal and -journal. */
  start(): void {
    if ((process.versions as Record<string, string | undefined>).deno) {
      // Deno's watcher opens and closes every file an event names. Closing any descriptor of a file drops
      // all of this process's POSIX locks on it, which would leave an application's own SQLite connection
      // in this process (a library user's) unlocked. A size/time check every 50 ms stands in, and like an event
      // it reports every change it sees, so the debounce still waits for a quiet moment.
      this.#pollTimer = setInterval(() => this.#watchPoll(), DENO_WATCH_POLL_MS);
      (this.#pollTimer as { unref?: () => void }).unref?.();
      return;
    }
    // Not -shm: a capture's own read of a WAL database touches it, and would wake the watcher again.
    const names = new Set(["", "-wal", "-journal"].map((suffix) => basename(this.#path) + suffix));
    try {
      this.#watcher = watchFs(dirname(this.#path), { persistent: false }, (_event, file) => {
        if (file === null || names.has(String(file))) this.notify();
      });
      this.#watcher.on("error", () => {
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch {
      // Polling alone then notices changes.
      this.#watcher = undefined;
    }
  }

  /** A commit may have happened: capture once the source has been quiet for a moment. */
  notify(): void {
    if (this.#hooks.closed()) return;
    const now = Date.now();
    if (this.#changedAt === 0) this.#changedAt = now;
    this.#lastChangeAt = now;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#dueTimer !== undefined) clearTimeout(this.#dueTimer);
    const { debounceMs, maxDelayMs } = this.#options;
    const due = Math.min(this.#lastChangeAt + debounceMs, this.#changedAt + maxDelayMs);
    this.#dueTimer = setTimeout(() => {
      this.#dueTimer = undefined;
      this.#hooks.due();
    }, Math.max(0, due - Date.now()));
  }

  /** A capture was asked for: the next change starts a new longest wait. */
  requested(): void {
    this.#changedAt = 0;
  }

  /** Cancels the debounce's pending capture (the caller captures at once). */
  cancel(): void {
    if (this.#dueTimer !== undefined) clearTimeout(this.#dueTimer);
    this.#dueTimer = undefined;
  }

  /** The source's size, time and inode, and its WAL's: what a capture is about to see. */
  async statKey(): Promise<string> {
    const parts: string[] = [];
    for (const suffix of ["", "-wal"]) {
      try {
        const s = await stat(this.#path + suffix, { bigint: true });
        parts.push(`${s.size}:${s.mtimeNs}:${s.ino}`);
      } catch {
        parts.push("-");
      }
    }
    return parts.join("|");
  }

  /** A capture of the source as `key` describes it succeeded. */
  captured(key: string): void {
    this.#captured = key;
    this.#failed = undefined;
  }

  /** A capture of the source as `key` describes it failed. */
  captureFailed(key: string): void {
    this.#failed = { key, ms: Date.now() };
  }

  /** The slower check, whatever the events say: a source unlike the last capture's is a change. */
  async poll(): Promise<void> {
    if (this.#hooks.closed() || this.#polling) return;
    this.#polling = true;
    try {
      const key = await this.statKey();
      const failed = this.#failed;
      if (failed && failed.key === key && Date.now() - failed.ms < CAPTURE_RETRY_MS) return;
      if (key !== this.#captured && !this.#hooks.capturing() && this.#dueTimer === undefined) this.notify();
    } finally {
      this.#polling = false;
    }
  }

  // Deno's stand-in for filesystem events: a change since the previous look is an event.
  async #watchPoll(): Promise<void> {
    if (this.#hooks.closed() || this.#watching) return;
    this.#watching = true;
    try {
      const key = await this.statKey();
      if (key !== this.#watchKey) {
        const first = this.#watchKey === "";
        this.#watchKey = key;
        if (!first) this.notify();
      }
    } finally {
      this.#watching = false;
    }
  }

  /** Stops watching; a pending capture is not made. */
  close(): void {
    if (this.#pollTimer !== undefined) clearInterval(this.#pollTimer);
    if (this.#dueTimer !== undefined) clearTimeout(this.#dueTimer);
    this.#watcher?.close();
  }
}
