/**
 * A consistent view of a live SQLite database, in rollback-journal and WAL modes, while other processes
 * write. The view is one read transaction on a read-only connection: its pages come from SQLite itself
 * through the `sqlite_dbpage` table, so they are exactly the bytes of one committed state, and no file
 * descriptor of ours on the database file can drop another connection's POSIX locks.
 *
 * @module
 */

import { type Client, createClient, type Transaction } from "@libsql/client";
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { isAbortError, TesseraError } from "../errors.ts";
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
  const reader = new SourceReader(path, options);
  try {
    return await reader.snapshot(fn);
  } finally {
    reader.close();
  }
}

/**
 * One read-only connection to a database, for taking snapshot after snapshot (a replicator's captures).
 * A closed @libsql/client connection keeps its file descriptors until garbage collection, so a new
 * connection per snapshot would pile them up in a long-running process. The connection is opened again
 * when the file at `path` is another file (a different inode) or after a failure.
 */
export class SourceReader {
  readonly path: string;
  readonly #busyTimeoutMs: number;
  #client: Client | undefined;
  #ino = -1;

  constructor(path: string, options: SnapshotOptions = {}) {
    this.path = resolve(path);
    this.#busyTimeoutMs = Math.max(0, Math.floor(options.busyTimeoutMs ?? 10_000));
  }

  /** Starts a read transaction and calls `fn` with the snapshot it pins, as {@linkcode withSourceSnapshot}. */
  async snapshot<T>(fn: (snapshot: SourceSnapshot) => Promise<T>): Promise<T> {
    const file = this.path;
    const before = await statSource(file);
    const walBefore = await readWal(`${file}-wal`);
    try {
      if (!this.#client || this.#ino !== before.ino) {
        this.close();
        // @libsql/client rejects "?mode=ro" on a file URL; a percent-encoded SQLite URI reaches SQLite intact.
        this.#client = createClient({ url: `file:${encodeURIComponent(`file:${file}?mode=ro`)}` });
        this.#ino = before.ino;
        await this.#client.execute(`PRAGMA busy_timeout = ${this.#busyTimeoutMs}`);
      }
      const tx = await this.#client.transaction("read");
      try {
        const mode = String((await tx.execute("PRAGMA journal_mode")).rows[0]?.[0] ?? "");
        const pageSize = Number((await tx.execute("PRAGMA page_size")).rows[0]?.[0]);
        const pageCount = Number((await tx.execute("PRAGMA page_count")).rows[0]?.[0]);
        const walAfter = mode === "wal" ? await readWal(`${file}-wal`) : undefined;
        const header = pageCount > 0 ? await readPageRange(tx, 1, 1, pageSize, file) : new Uint8Array(0);
        const changeCounter = header.length >= 28
          ? new DataView(header.buffer, header.byteOffset).getUint32(24)
          : 0;
        const evidence: SourceEvidence = {
          ...before,
          changeCounter,
          wal: walBefore
            ? { salt1: walBefore.salt1, salt2: walBefore.salt2, frames: walBefore.frames }
            : null,
        };
        const snapshot: SourceSnapshot = {
          path: file,
          pageSize,
          pageCount,
          imageLength: pageSize * pageCount,
          walMode: mode === "wal",
          evidence,
          changedPagesSince: (previous) => changedPages(previous, before, walAfter),
          readPages: (first, count) => readPageRange(tx, first, count, pageSize, file),
        };
        return await fn(snapshot);
      } finally {
        await tx.rollback().catch(() => {});
      }
    } catch (error) {
      // A connection that failed is not trusted for the next snapshot.
      if (!(error instanceof TesseraError) || error.code === "SOURCE_UNREADABLE") this.close();
      if (error instanceof TesseraError || isAbortError(error)) throw error;
      const reason = error instanceof Error ? error.message : String(error);
      throw new TesseraError("SOURCE_UNREADABLE", `Cannot read database "${file}": ${reason}`, {
        cause: error,
      });
    }
  }

  /** Closes the connection; a later snapshot opens a new one. */
  close(): void {
    this.#client?.close();
    this.#client = undefined;
    this.#ino = -1;
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

// sqlite_dbpage can look a page up only by "pgno = ?" (or IN): a range condition makes it scan every page
// of the database for each query, which turns a full read quadratic. So pages are asked for by number.
const PAGES_PER_QUERY = 256;

async function readPageRange(
  tx: Transaction,
  first: number,
  count: number,
  pageSize: number,
  file: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(count * pageSize);
  for (let done = 0; done < count; done += PAGES_PER_QUERY) {
    const n = Math.min(PAGES_PER_QUERY, count - done);
    const pages = Array.from({ length: n }, (_, i) => first + done + i);
    const result = await tx.execute({
      sql: `SELECT pgno, data FROM sqlite_dbpage WHERE pgno IN (${
        pages.map(() => "?").join(",")
      }) ORDER BY pgno`,
      args: pages,
    });
    if (result.rows.length !== n) {
      throw new TesseraError(
        "SOURCE_UNREADABLE",
        `Cannot read pages ${pages[0]}..${
          pages[n - 1]
        } of "${file}": SQLite returned ${result.rows.length} pages`,
      );
    }
    for (const [i, row] of result.rows.entries()) {
      const data = row.data;
      if (Number(row.pgno) !== pages[i] || !(data instanceof ArrayBuffer) || data.byteLength !== pageSize) {
        throw new TesseraError(
          "SOURCE_UNREADABLE",
          `Cannot read page ${pages[i]} of "${file}": unexpected page data`,
        );
      }
      out.set(new Uint8Array(data), (done + i) * pageSize);
    }
  }
  return out;
}
