/**
 * The reader process: one read transaction on a read-only connection to a source database, answering its
 * parent over stdin (JSON lines) and stdout (length-prefixed frames), then exiting.
 *
 * It runs in a process of its own because SQLite's locks are POSIX advisory locks, which belong to a
 * process and are all released when that process closes any descriptor of the file. A parent that opens
 * and closes the database or its `-shm` outside SQLite (Deno's file watcher does, for every file an event
 * names) silently drops the locks of a connection kept in it; other processes then checkpoint and delete
 * `-wal`/`-shm` under it, and the connection goes on reading a wal-index nobody updates: stale pages,
 * or SIGBUS when the `-shm` it maps is truncated. A process that does nothing but this one transaction
 * and exits leaves nothing behind: no lock between captures, no descriptor, no connection kept alive by
 * its statements until garbage collection.
 *
 * Requests: `{"op":"begin"}`, `{"op":"read","first":N,"count":M}` (pages, 1-based), `{"op":"end"}`.
 * Frames: a 4-byte big-endian length of what follows it, a kind byte (0 JSON, 1 page bytes), three zero
 * bytes, then the payload, which so starts 8 bytes in (word-aligned for the parent's readers of it).
 *
 * @module
 */

import Database from "libsql";
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import process from "node:process";

interface Request {
  op: "begin" | "read" | "end";
  first?: number;
  count?: number;
}

// sqlite_dbpage can look a page up only by "pgno = ?" (or IN): a range condition makes it scan every page
// of the database for each query, which turns a full read quadratic. So pages are asked for by number.
const PAGES_PER_QUERY = 256;

const [path = "", busyArg] = process.argv.slice(2);
const busyTimeoutMs = Math.max(0, Math.floor(Number(busyArg) || 0));
let db: Database.Database | undefined;
let pageSize = 0;
let pageCount = 0;
// In rollback-journal mode, the database file itself while this process's read transaction holds SQLite's
// shared lock: no writer can change it until the transaction ends, so its pages are read straight from
// the file, much faster than through sqlite_dbpage. Closed only after the transaction (closing any
// descriptor of a file drops this process's POSIX locks on it).
let direct: number | undefined;
let inode: number | undefined;

// The parent's terminal signals are its own to handle: it may want one more capture on Ctrl-C. This
// process ends with its transaction, or when the parent goes away (stdin closes).
process.on("SIGINT", () => {});
process.on("SIGTERM", () => {});

function send(kind: 0 | 1, payload: Uint8Array): Promise<void> {
  const frame = new Uint8Array(8 + payload.length);
  new DataView(frame.buffer).setUint32(0, payload.length + 4);
  frame[4] = kind;
  frame.set(payload, 8);
  return new Promise((resolve) => process.stdout.write(frame, () => resolve()));
}

function sendJson(value: unknown): Promise<void> {
  return send(0, new TextEncoder().encode(JSON.stringify(value)));
}

function one(sql: string): unknown {
  if (!db) throw new Error("no connection");
  const row = db.prepare(sql).raw(true).get() as unknown[] | undefined;
  return row?.[0];
}

function begin(): { mode: string; pageSize: number; pageCount: number } {
  // The file at the path as SQLite is about to open it: read straight only if it is still that file.
  inode = statSync(path, { throwIfNoEntry: false })?.ino;
  // Read-only through a URI: libsql's `readonly` option opens the file for writing all the same (an INSERT
  // succeeds), and a writable connection that closes last checkpoints the WAL into the database file.
  const opened = new Database(`file:${path.split("/").map(encodeURIComponent).join("/")}?mode=ro`);
  db = opened;
  opened.exec(`PRAGMA busy_timeout = ${busyTimeoutMs}`);
  opened.exec("BEGIN");
  const mode = String(one("PRAGMA journal_mode") ?? "");
  // The first read of the database: the read transaction's snapshot is taken here. The page size is asked
  // after it, so it is the snapshot's: asked first, it could be the size from before a VACUUM that changed
  // it (the pager answers from what it last read), and every page would then have the wrong length.
  pageCount = Number(one("PRAGMA page_count"));
  pageSize = Number(one("PRAGMA page_size"));
  if (mode !== "wal" && pageCount > 0) direct = openDirect();
  return { mode, pageSize, pageCount };
}

// The file at `path`, when it holds the state the transaction reads: its page 1 (with the change counter
// every rollback-journal commit bumps) is the transaction's. Else (the path was replaced since SQLite
// opened it), undefined: pages come through SQLite.
function openDirect(): number | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const page = new Uint8Array(pageSize);
    if (
      inode !== undefined && fstatSync(fd).ino === inode &&
      readSync(fd, page, 0, pageSize, 0) === pageSize && sameBytes(page, viaSqlite(1, 1))
    ) {
      return fd;
    }
  } catch {
    // Unreadable this way: SQLite reads it.
  }
  if (fd !== undefined) pendingClose.push(fd);
  return undefined;
}

// Descriptors closed only once the transaction has ended (see `direct`).
const pendingClose: number[] = [];

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function read(first: number, count: number): Uint8Array {
  if (!db) throw new Error("no read transaction");
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(count) || first < 1 || count < 0) {
    throw new Error(`bad page range ${first}+${count}`);
  }
  if (first + count - 1 > pageCount) {
    throw new Error(`pages ${first}..${first + count - 1} past ${pageCount}`);
  }
  if (direct === undefined) return viaSqlite(first, count);
  const out = new Uint8Array(count * pageSize);
  let done = 0;
  while (done < out.length) {
    const n = readSync(direct, out, done, out.length - done, (first - 1) * pageSize + done);
    if (n === 0) throw new Error(`pages ${first}..${first + count - 1}: the file ends early`);
    done += n;
  }
  return out;
}

function viaSqlite(first: number, count: number): Uint8Array {
  const open = db;
  if (!open) throw new Error("no read transaction");
  const out = new Uint8Array(count * pageSize);
  for (let done = 0; done < count; done += PAGES_PER_QUERY) {
    const n = Math.min(PAGES_PER_QUERY, count - done);
    const pages = Array.from({ length: n }, (_, i) => first + done + i);
    const sql = `SELECT pgno, data FROM sqlite_dbpage WHERE pgno IN (${
      pages.map(() => "?").join(",")
    }) ORDER BY pgno`;
    const rows = open.prepare(sql).raw(true).all(...pages) as unknown[][];
    if (rows.length !== n) {
      throw new Error(`pages ${pages[0]}..${pages[n - 1]}: SQLite returned ${rows.length} pages`);
    }
    for (const [i, row] of rows.entries()) {
      const data = row[1];
      if (Number(row[0]) !== pages[i] || !(data instanceof Uint8Array) || data.byteLength !== pageSize) {
        throw new Error(`page ${pages[i]}: unexpected page data`);
      }
      out.set(data, (done + i) * pageSize);
    }
  }
  return out;
}

function end(): void {
  try {
    db?.exec("ROLLBACK");
  } catch {
    // The transaction may not have started; closing ends it either way.
  }
  db?.close();
  db = undefined;
  if (direct !== undefined) pendingClose.push(direct);
  direct = undefined;
  for (const fd of pendingClose.splice(0)) closeSync(fd);
}

async function handle(request: Request): Promise<boolean> {
  try {
    if (request.op === "begin") await sendJson(begin());
    else if (request.op === "read") await send(1, read(request.first ?? 0, request.count ?? 0));
    else {
      end();
      await sendJson({ ended: true });
      return false;
    }
    return true;
  } catch (error) {
    const e = error as { message?: string; code?: string; rawCode?: number };
    let message = String(e?.message ?? error);
    // libsql reports a failed open as `ConnectionFailed("... : 14")`; say what SQLite means.
    const open = /^ConnectionFailed\(.*: (\d+)"\)$/s.exec(message);
    if (open) {
      message = `cannot open the database (SQLite error ${open[1]}${
        open[1] === "14" ? ": unable to open database file" : ""
      })`;
    }
    const code = typeof e?.code === "string" ? e.code : "";
    try {
      end();
    } catch {
      // Reported below; the process ends anyway.
    }
    await sendJson({
      error: { code, message: code && !message.startsWith(code) ? `${code}: ${message}` : message },
    });
    return false;
  }
}

let buffered = "";
let queue = Promise.resolve(true);
process.stdin.on("data", (chunk: Uint8Array | string) => {
  buffered += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
  let newline: number;
  while ((newline = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, newline);
    buffered = buffered.slice(newline + 1);
    if (!line.trim()) continue;
    queue = queue.then(async (going) => {
      if (!going) return false;
      const more = await handle(JSON.parse(line) as Request);
      if (!more) process.exit(0);
      return more;
    });
  }
});
process.stdin.on("end", () => {
  end();
  process.exit(0);
});
await sendJson({ ready: true });
