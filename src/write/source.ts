/**
 * A consistent view of a live SQLite database, in rollback-journal and WAL modes, while other processes
 * write. The view is one read transaction on a read-only connection: its pages come from SQLite itself
 * through the `sqlite_dbpage` table, so they are exactly the bytes of one committed state, and no file
 * descriptor of ours on the database file can drop another connection's POSIX locks.
 *
 * @module
 */

import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { errorMessage, isAbortError, TesseraError } from "../errors.ts";
import { ReaderProcess } from "./reader_process.ts";
import { readWal, type WalSummary } from "./wal.ts";

/** What the sync records of the source to tell, next time, whether and where it changed. */
export interface SourceEvidence {
  size: number;
  mtimeMs: number;
  ino: number;
  changeCounter: number;
  /** The WAL's salts and committed frames seen before the read transaction began, or null without a WAL. */
  wal: { salt1: number; salt2: number; frames: number } | null;
}

/** Whether two records of the source describe the same committed state, as far as cheap evidence tells. */
export function sameEvidence(a: SourceEvidence, b: SourceEvidence): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino &&
    a.changeCounter === b.changeCounter &&
    (a.wal === null) === (b.wal === null) &&
    (a.wal === null ||
      (a.wal.salt1 === b.wal?.salt1 && a.wal.salt2 === b.wal?.salt2 && a.wal.frames === b.wal?.frames));
}

/** One committed state of the database, readable until the callback returns. */
export interface SourceSnapshot {
  /** The database file's absolute path. */
  path: string;
  pageSize: number;
  pageCount: number;
  imageLength: number;
  walMode: boolean;
  evidence: SourceEvidence;
  /**
   * Pages that may differ from the state `previous` describes, when the WAL proves it (the database file
   * is untouched and the log only grew); `undefined` when only a full read can tell.
   */
  changedPagesSince(previous: SourceEvidence): Set<number> | undefined;
  /** `count` pages from page `first` (1-based), end to end. */
  readPages(first: number, count: number): Promise<Uint8Array>;
}

/** Options of {@linkcode withSourceSnapshot}. */
export interface SnapshotOptions {
  /** How long to wait for a writer's lock, in milliseconds. @default {10000} */
  busyTimeoutMs?: number | undefined;
  /** Stops the read at once, reader process and all. */
  signal?: AbortSignal | undefined;
}

/**
 * Opens `path` read-only, starts a read transaction, and calls `fn` with the snapshot it pins. Writers are
 * held back only where SQLite holds them back for any reader: in rollback-journal mode, while the
 * transaction lasts; in WAL mode, not at all.
 */
export async function withSourceSnapshot<T>(
  path: string,
  fn: (snapshot: SourceSnapshot) => Promise<T>,
  options: SnapshotOptions = {},
): Promise<T> {
  const reader = new SourceReader(path, { ...options, spare: false });
  try {
    return await reader.snapshot(fn, options.signal);
  } finally {
    reader.close();
  }
}

/** Options of {@linkcode SourceReader}. */
export interface SourceReaderOptions extends SnapshotOptions {
  /**
   * Start the reader process for the next snapshot as soon as one ends, so a capture does not wait for a
   * runtime to start. The spare holds no connection and no descriptor of the database. @default {true}
   */
  spare?: boolean | undefined;
}

/**
 * Snapshot after snapshot of one database (a replicator's captures). Each snapshot is one read transaction
 * in a reader process of its own that opens the database, reads, and exits (see `_reader_main.ts` for
 * why): nothing is held between snapshots, so whatever other processes do to the file, its `-wal` and
 * `-shm` in between (checkpoints, deletion by the last writer's close, a journal-mode switch, the file
 * replaced), the next snapshot reads the database's current committed state, and a long-running process
 * accumulates no descriptors.
 */
export class SourceReader {
  readonly path: string;
  readonly #busyTimeoutMs: number;
  readonly #spare: boolean;
  #next: ReaderProcess | undefined;
  #closed = false;

  constructor(path: string, options: SourceReaderOptions = {}) {
    this.path = resolve(path);
    this.#busyTimeoutMs = Math.max(0, Math.floor(options.busyTimeoutMs ?? 10_000));
    this.#spare = options.spare ?? true;
  }

  /**
   * Starts a read transaction and calls `fn` with the snapshot it pins, as {@linkcode withSourceSnapshot}.
   * An abort of `signal` stops the reader process at once, even in SQLite's busy wait.
   */
  async snapshot<T>(fn: (snapshot: SourceSnapshot) => Promise<T>, signal?: AbortSignal): Promise<T> {
    // A file deleted and made again (or renamed over) while the reader opened it fails that open; the
    // file there now is read once more before the failure is reported (unless the database was locked).
    return await this.#snapshot(fn, signal, true);
  }

  async #snapshot<T>(
    fn: (snapshot: SourceSnapshot) => Promise<T>,
    signal: AbortSignal | undefined,
    again: boolean,
  ): Promise<T> {
    signal?.throwIfAborted();
    const file = this.path;
    const before = await statSource(file);
    const walBefore = await readWal(`${file}-wal`);
    const reader = this.#next ?? ReaderProcess.start(file, this.#busyTimeoutMs);
    this.#next = undefined;
    const stop = () => reader.kill();
    signal?.addEventListener("abort", stop, { once: true });
    let opened = false;
    let retry = false;
    try {
      const { mode, pageSize, pageCount } = await reader.begin();
      opened = true;
      const walAfter = mode === "wal" ? await readWal(`${file}-wal`) : undefined;
      const header = pageCount > 0 ? await reader.read(1, 1) : new Uint8Array(0);
      const changeCounter = header.length >= 28
        ? new DataView(header.buffer, header.byteOffset).getUint32(24)
        : 0;
      const evidence: SourceEvidence = {
        ...before,
        changeCounter,
        wal: walBefore ? { salt1: walBefore.salt1, salt2: walBefore.salt2, frames: walBefore.frames } : null,
      };
      const snapshot: SourceSnapshot = {
        path: file,
        pageSize,
        pageCount,
        imageLength: pageSize * pageCount,
        walMode: mode === "wal",
        evidence,
        changedPagesSince: (previous) => changedPages(previous, before, walAfter),
        readPages: (first, count) => reader.read(first, count),
      };
      const result = await fn(snapshot);
      await reader.end();
      return result;
    } catch (error) {
      reader.kill();
      if (signal?.aborted) throw signal.reason;
      if (error instanceof TesseraError || isAbortError(error)) throw error;
      // Deleted between the first look and the reader's open: say so as the first look would have.
      await statSource(file);
      // Not for a lock held past the busy timeout: that wait is not repeated.
      if (!opened && again && !/SQLITE_BUSY|database is locked/.test(errorMessage(error))) {
        retry = true;
      } else {
        const message = `Cannot read database "${file}": ${errorMessage(error)}`;
        throw new TesseraError("SOURCE_UNREADABLE", message, { cause: error });
      }
    } finally {
      signal?.removeEventListener("abort", stop);
      if (this.#spare && !this.#closed && !retry) {
        this.#next = ReaderProcess.start(file, this.#busyTimeoutMs);
      }
    }
    return await this.#snapshot(fn, signal, false);
  }

  /** Stops the spare reader process; a later snapshot still works, starting its reader when it begins. */
  close(): void {
    this.#closed = true;
    this.#next?.kill();
    this.#next = undefined;
  }
}

async function statSource(file: string): Promise<{ size: number; mtimeMs: number; ino: number }> {
  try {
    const s = await stat(file, { bigint: true });
    if (!s.isFile()) throw new TesseraError("NOT_FOUND", `Cannot sync "${file}": it is not a file`);
    return { size: Number(s.size), mtimeMs: Number(s.mtimeMs), ino: Number(s.ino) };
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") {
      throw new TesseraError("NOT_FOUND", `Cannot sync "${file}": no such database file`);
    }
    throw error;
  }
}

// The WAL proves what changed only when the database file is as it was (no checkpoint wrote to it), the
// log is the same generation (same salts), and it only grew. Every page of every frame after the frames
// recorded last time may differ; frames appended after our transaction began only add pages to re-read.
function changedPages(
  previous: SourceEvidence,
  now: { size: number; mtimeMs: number; ino: number },
  walAfter: WalSummary | undefined,
): Set<number> | undefined {
  if (previous.size !== now.size || previous.mtimeMs !== now.mtimeMs || previous.ino !== now.ino) {
    return undefined;
  }
  if (!previous.wal || !walAfter) return undefined;
  if (previous.wal.salt1 !== walAfter.salt1 || previous.wal.salt2 !== walAfter.salt2) return undefined;
  if (walAfter.frames < previous.wal.frames) return undefined;
  const pages = new Set<number>([1]);
  for (const page of walAfter.framePages.slice(previous.wal.frames)) pages.add(page);
  return pages;
}
