/**
 * The benchmark's databases: one of random rows made by SQLite itself (4 KiB pages, rollback journal),
 * one-row updates, and a WAL-mode copy held open by a writer connection as a live application holds it.
 *
 * @module
 */

import { type Client, createClient } from "@libsql/client";
import { copyFile } from "node:fs/promises";

/** The shape of the database {@linkcode createRandomDatabase} made. */
export interface DatabaseInfo {
  rows: number;
  pageSize: number;
  pages: number;
  bytes: number;
  journalMode: string;
}

const PAGE_SIZE = 4096;
const BLOB_BYTES = 200;
// Measured: an (id, random(), randomblob(200)) row takes about 228 bytes of a 4 KiB leaf page.
const BYTES_PER_ROW = 228;

/**
 * Creates `path` with table `random_data` of random rows until the file holds at least `targetBytes`.
 * SQLite makes the rows (`random()`, `randomblob()`), so the data is incompressible and fast to make.
 */
export async function createRandomDatabase(path: string, targetBytes: number): Promise<DatabaseInfo> {
  const db = createClient({ url: `file:${path}` });
  try {
    await db.execute(`PRAGMA page_size = ${PAGE_SIZE}`);
    await db.execute("PRAGMA journal_mode = DELETE");
    await db.execute(
      "CREATE TABLE random_data (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, payload BLOB NOT NULL)",
    );
    let rows = 0;
    // The estimate is close; a second round tops up the few pages it may fall short by.
    for (let round = 0; round < 4; round++) {
      const pages = await pragmaNumber(db, "page_count");
      const missing = targetBytes - pages * PAGE_SIZE;
      if (missing <= 0) break;
      const add = Math.max(1, Math.ceil(missing / BYTES_PER_ROW));
      await db.execute(
        `INSERT INTO random_data (id, n, payload) WITH RECURSIVE cnt(x) AS (SELECT ${rows + 1} UNION ALL ` +
          `SELECT x + 1 FROM cnt LIMIT ${add}) SELECT x, random(), randomblob(${BLOB_BYTES}) FROM cnt`,
      );
      rows += add;
    }
    const pageSize = await pragmaNumber(db, "page_size");
    const pages = await pragmaNumber(db, "page_count");
    const journalMode = String((await db.execute("PRAGMA journal_mode")).rows[0]?.[0]);
    return { rows, pageSize, pages, bytes: pageSize * pages, journalMode };
  } finally {
    db.close();
  }
}

/** Rewrites one row in place (same sizes), as one committed transaction, through a new connection. */
export async function updateOneRow(path: string, id: number): Promise<void> {
  const db = createClient({ url: `file:${path}` });
  try {
    await updateRow(db, id);
  } finally {
    db.close();
  }
}

/** A WAL-mode database with its writer connection open, so the WAL is not checkpointed behind our back. */
export interface WalDatabase {
  path: string;
  /** Commits a one-row update; it lands in the WAL, not in the database file. */
  update(id: number): Promise<void>;
  /** Copies the WAL into the database file and empties it, so the file alone holds the database. */
  checkpoint(): Promise<void>;
  close(): void;
}

/**
 * Copies `source` to `path`, switches the copy to WAL mode and commits one warm-up update, so the WAL
 * holds committed frames before the first sync, as a live WAL database's does.
 */
export async function openWalCopy(source: string, path: string, warmUpId: number): Promise<WalDatabase> {
  await copyFile(source, path);
  const db = createClient({ url: `file:${path}` });
  try {
    const mode = String((await db.execute("PRAGMA journal_mode = WAL")).rows[0]?.[0]);
    if (mode !== "wal") throw new Error(`Cannot switch "${path}" to WAL mode: SQLite answered "${mode}"`);
    await updateRow(db, warmUpId);
  } catch (error) {
    db.close();
    throw error;
  }
  return {
    path,
    update: (id) => updateRow(db, id),
    async checkpoint() {
      const row = (await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")).rows[0];
      if (Number(row?.[0]) !== 0) throw new Error(`Cannot checkpoint "${path}": SQLite reported it busy`);
    },
    close: () => db.close(),
  };
}

async function updateRow(db: Client, id: number): Promise<void> {
  const result = await db.execute({
    sql: `UPDATE random_data SET n = random(), payload = randomblob(${BLOB_BYTES}) WHERE id = ?`,
    args: [id],
  });
  if (result.rowsAffected !== 1) throw new Error(`Cannot update row ${id}: no such row`);
}

async function pragmaNumber(db: Client, name: string): Promise<number> {
  return Number((await db.execute(`PRAGMA ${name}`)).rows[0]?.[0]);
}
