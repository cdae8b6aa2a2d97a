/**
 * Directory snapshots: a live SQLite database checkpointed into a directory on any mounted filesystem (a
 * parallel or network filesystem, a USB disk), in the local-directory store layout, so `tessera restore`,
 * `tessera ls` and replicas read it like any other store. Optionally the snapshot is read back and checked,
 * and the source database removed once the snapshot is proven to hold exactly its bytes.
 *
 * @module
 */

import { createClient, type Transaction } from "@libsql/client";
import { createHash } from "node:crypto";
import { mkdir, stat, unlink } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { idsEqual, ZERO_ID } from "../chunk/ids.ts";
import { StoreChunkSource } from "../chunk/source.ts";
import { errorMessage, TesseraError } from "../errors.ts";
import { syncDir } from "../files.ts";
import { listDatabases, loadLatest } from "../manifest/catalog.ts";
import { chunkKey, packKey } from "../manifest/keys.ts";
import { readImage } from "../restore/read_image.ts";
import { LocalStore } from "../store/local.ts";
import type { BlobStore } from "../store/types.ts";
import { defaultSpoolDir } from "../write/spool.ts";
import { syncDatabase, type SyncReport } from "../write/sync.ts";

/** Options of {@linkcode snapshotToDirectory}. */
export interface DirectorySnapshotOptions {
  /** The host name that, with the absolute path, names the database. */
  hostname: string;
  /** A chosen name instead of the derived one. */
  name?: string | undefined;
  /** Chunk size in bytes, a power of two from 4 KiB to 1 MiB. @default {65536} */
  chunkSize?: number | undefined;
  /** Where the record of the last sync lives. @default {`<tmpdir>/tessera-spool-<uid>`} */
  spoolDir?: string | undefined;
  /** Read the snapshot back from the directory and check it. @default {false} */
  verify?: boolean | undefined;
  /** After a verified snapshot, remove the database and its `-wal`, `-shm` and `-journal` (implies
   * `verify`); refused when the database changed since the snapshot or a writer holds it. @default {false} */
  removeSource?: boolean | undefined;
  /** How long the removal waits for another connection's write lock, in milliseconds. @default {2000} */
  busyTimeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  /** Called as chunks are read from the database: bytes read so far and in all. */
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/** What {@linkcode snapshotToDirectory} did. */
export interface DirectorySnapshotReport extends SyncReport {
  /** The directory's absolute path. */
  directory: string;
  /** The database file's absolute path. */
  database: string;
  /** The read-back check, when one was made. */
  verified: VerifyReport | null;
  /** The files removed with `removeSource`, database first. */
  removed: string[];
}

/**
 * Writes a snapshot of the live database at `path` into `directory` (created if missing). The whole
 * database is read every time, so the manifest always holds the image's SHA-256; chunk files the
 * directory already holds are not written again.
 *
 * Writers wait only while the consistent view is copied: in rollback-journal mode for the whole copy
 * (a read transaction), in WAL mode not at all.
 *
 * @example Checkpointing a database to a shared filesystem
 * ```ts ignore
 * import { snapshotToDirectory } from "./directory.ts";
 * const report = await snapshotToDirectory("/nvme/app.db", "/shared/ckpt/app", { hostname: "node7" });
 * console.log(report.sequence, report.imageSha256);
 * ```
 */
export async function snapshotToDirectory(
  path: string,
  directory: string,
  options: DirectorySnapshotOptions,
): Promise<DirectorySnapshotReport> {
  const database = resolve(path);
  const root = resolve(directory);
  const source = await stat(database).catch(() => undefined);
  if (!source?.isFile()) {
    throw new TesseraError("NOT_FOUND", `Cannot snapshot "${database}": no such database file`);
  }
  try {
    await mkdir(root, { recursive: true });
  } catch (error) {
    throw new TesseraError(
      "STORE_IO",
      `Cannot create the snapshot directory "${root}": ${errorMessage(error)}`,
      {
        cause: error,
      },
    );
  }
  const store = new LocalStore(root);
  const report = await syncDatabase(database, {
    stores: [store],
    hostname: options.hostname,
    name: options.name,
    chunkSize: options.chunkSize,
    spoolDir: options.spoolDir ?? defaultSpoolDir(),
    full: true,
    signal: options.signal,
    onProgress: options.onProgress,
  });
  let verified: VerifyReport | null = null;
  if (options.verify || options.removeSource) {
    try {
      verified = await verifySnapshot(store, report.name, {
        sequence: report.sequence,
        sha256: report.imageSha256 ?? undefined,
        signal: options.signal,
      });
    } catch (error) {
      if (!(error instanceof TesseraError && options.removeSource)) throw error;
      throw new TesseraError(error.code, `${error.message}; "${database}" was not removed`, { cause: error });
    }
  }
  let removed: string[] = [];
  if (options.removeSource && verified) {
    removed = await removeIfUnchanged(database, verified, {
      busyTimeoutMs: options.busyTimeoutMs ?? 2000,
      where: `${root} (sequence ${report.sequence})`,
    });
  }
  return { ...report, directory: root, database, verified, removed };
}

/** Options of {@linkcode verifySnapshot}. */
export interface VerifyOptions {
  /** The sequence the pointer must name; another means someone else published since. */
  sequence?: number | undefined;
  /** The image's SHA-256 (hex) as the writer read it. */
  sha256?: string | undefined;
  /** Chunks read at once. @default {8} */
  concurrency?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** What {@linkcode verifySnapshot} read back. */
export interface VerifyReport {
  name: string;
  sequence: number;
  /** The image's length in bytes. */
  bytes: number;
  /** SHA-256 of the rebuilt image, lower-case hex. */
  sha256: string;
  /** Chunk objects read back (zero chunks are never stored; chunk 0 is in the manifest). */
  chunksRead: number;
}

/**
 * Reads the newest snapshot of `name` back from `store` without writing anything: the pointer, the
 * manifest it names (checked against the pointer), every index and data chunk (each checked against its
 * id), and the whole image against the manifest's SHA-256 and `options.sha256`.
 *
 * @example Checking a directory snapshot
 * ```ts ignore
 * import { LocalStore } from "../store/local.ts";
 * import { verifySnapshot } from "./directory.ts";
 * const report = await verifySnapshot(new LocalStore("/shared/ckpt/app"), "app");
 * console.log(report.sequence, report.sha256);
 * ```
 */
export async function verifySnapshot(
  store: BlobStore,
  name: string,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const { signal } = options;
  const concurrency = options.concurrency ?? 8;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`Cannot verify: concurrency ${concurrency} is not a positive integer`);
  }
  const { manifest } = await loadLatest(store, name, { signal });
  const what = `snapshot ${manifest.sequence} of "${name}" in ${store.description}`;
  if (options.sequence !== undefined && manifest.sequence !== options.sequence) {
    throw new TesseraError(
      "CONFLICT",
      `Cannot verify snapshot ${options.sequence} of "${name}" in ${store.description}: its pointer names ` +
        `snapshot ${manifest.sequence}, so another writer published there; use one writer per directory`,
    );
  }
  const read = await readImage(manifest, new StoreChunkSource(store), {
    doing: `verify ${what}`,
    hasher: () => createHash("sha256"),
    describe: (problem) => {
      if (problem.kind === "image" || problem.kind === "digest") return undefined;
      const at = `chunk #${problem.index}`;
      const where = problem.kind === "length" ? undefined : problem.where;
      const key = where ? `${packKey(where.pack)} at byte ${where.offset}` : chunkKey(problem.id);
      if (problem.kind === "missing") return `Cannot verify ${what}: ${at} (${key}) is missing`;
      if (problem.kind === "unreadable") {
        return `Cannot verify ${what}: ${at} at ${key}: ${problem.error.message}`;
      }
      const { length, expected } = problem;
      return `Cannot verify ${what}: ${at} (${key}) holds ${length} bytes, the manifest places ${expected}`;
    },
    concurrency,
    signal,
  });
  const sha256 = read.sha256!;
  if (options.sha256 !== undefined && options.sha256 !== sha256) {
    throw new TesseraError(
      "CHECKSUM_MISMATCH",
      `Cannot verify ${what}: the rebuilt image's SHA-256 is ${sha256}, but the database as read says ` +
        options.sha256,
    );
  }
  const chunksRead = read.ids.filter((id) => !idsEqual(id, ZERO_ID)).length;
  return { name, sequence: manifest.sequence, bytes: manifest.imageLength, sha256, chunksRead };
}

/**
 * The names of the databases whose pointer `store` holds, sorted.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "../store/memory.ts";
 * import { databaseNames } from "./directory.ts";
 * console.log(await databaseNames(new MemoryStore())); // []
 * ```
 */
export async function databaseNames(store: BlobStore, signal?: AbortSignal): Promise<string[]> {
  return (await listDatabases(store, { withPointer: true, signal })).sort();
}

const SIDECARS = ["-wal", "-shm", "-journal"];

// Under a write transaction no other connection can commit, so the image hashed here is the one removed.
// The database file goes first: SQLite then sees it as moved, and no connection of this process closing
// later checkpoints into it or deletes a "-wal" by name (which could by then belong to a new database).
async function removeIfUnchanged(
  file: string,
  verified: VerifyReport,
  options: { busyTimeoutMs: number; where: string },
): Promise<string[]> {
  const kept = `nothing was removed; the snapshot in ${options.where} is complete`;
  // mode=rw: a database that vanished meanwhile must not be created empty.
  const client = createClient({ url: `file:${encodeURIComponent(`file:${file}?mode=rw`)}`, concurrency: 1 });
  try {
    await client.execute(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs))}`);
    let tx: Transaction;
    try {
      tx = await client.transaction("write");
    } catch (error) {
      if (!isBusy(error)) throw error;
      throw new TesseraError(
        "CONFLICT",
        `Cannot remove "${file}": another connection is writing to it; ${kept}. Stop the application ` +
          "and snapshot again with --remove-source",
        { cause: error },
      );
    }
    try {
      const now = await hashImage(tx, file);
      if (now.sha256 !== verified.sha256) {
        throw new TesseraError(
          "CONFLICT",
          `Cannot remove "${file}": it changed after the snapshot (it now holds ${now.bytes} bytes with ` +
            `SHA-256 ${now.sha256}, the snapshot ${verified.bytes} bytes with ${verified.sha256}); ${kept}. ` +
            "Stop the writers and snapshot again with --remove-source",
        );
      }
      const removed: string[] = [];
      for (const path of [file, ...SIDECARS.map((s) => file + s)]) {
        try {
          await unlink(path);
          removed.push(path);
        } catch (error) {
          if ((error as { code?: string }).code !== "ENOENT") {
            throw new TesseraError(
              "STORE_IO",
              `Cannot remove "${path}": ${errorMessage(error)}` +
                (removed.length > 0 ? ` (already removed: ${removed.join(", ")})` : ""),
              { cause: error },
            );
          }
        }
      }
      await syncDir(dirname(file));
      return removed;
    } finally {
      await tx.rollback().catch(() => {});
    }
  } catch (error) {
    if (error instanceof TesseraError) throw error;
    throw new TesseraError("SOURCE_UNREADABLE", `Cannot remove "${file}": ${errorMessage(error)}; ${kept}`, {
      cause: error,
    });
  } finally {
    client.close();
  }
}

// Pages are asked for by number: sqlite_dbpage scans the whole database for a range condition.
const PAGES_PER_QUERY = 256;

async function hashImage(tx: Transaction, file: string): Promise<{ bytes: number; sha256: string }> {
  const pageSize = Number((await tx.execute("PRAGMA page_size")).rows[0]?.[0]);
  const pageCount = Number((await tx.execute("PRAGMA page_count")).rows[0]?.[0]);
  const hash = createHash("sha256");
  for (let first = 1; first <= pageCount; first += PAGES_PER_QUERY) {
    const pages = Array.from(
      { length: Math.min(PAGES_PER_QUERY, pageCount - first + 1) },
      (_, i) => first + i,
    );
    const result = await tx.execute({
      sql: `SELECT data FROM sqlite_dbpage WHERE pgno IN (${pages.map(() => "?").join(",")}) ORDER BY pgno`,
      args: pages,
    });
    if (result.rows.length !== pages.length) {
      throw new TesseraError(
        "SOURCE_UNREADABLE",
        `Cannot read pages ${first}..${first + pages.length - 1} of "${file}": SQLite returned ` +
          `${result.rows.length} pages`,
      );
    }
    for (const row of result.rows) hash.update(new Uint8Array(row.data as ArrayBuffer));
  }
  return { bytes: pageSize * pageCount, sha256: hash.digest("hex") };
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "SQLITE_BUSY" || code === "SQLITE_LOCKED";
}
