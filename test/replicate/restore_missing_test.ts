import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { TesseraError } from "../../src/errors.ts";
import { restoreIfMissing } from "../../src/replicate/restore_missing.ts";
import { parseWal } from "../../src/write/wal.ts";
import { syncDatabase, type SyncReport } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import type { BlobStore, GetResult, HeadResult, ListItem } from "../../src/store/types.ts";
import { assertBytes, rejectsWithCode } from "../_helpers/assert.ts";
import { checkWriterDb } from "../_helpers/sqlite_check.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { makeDb, startWriter } from "../_helpers/writer.ts";

/** A store that cannot be reached: every call fails as an S3 endpoint that is down would. */
class UnreachableStore implements BlobStore {
  readonly description = "s3://unreachable/backups";
  readonly capabilities = Object.freeze({ write: true, list: true, conditionalPut: false });
  calls = 0;
  #fail(op: string, key: string): never {
    this.calls++;
    throw new TesseraError(
      "S3_REQUEST_FAILED",
      `Cannot ${op} "${key}" in ${this.description}: connection refused`,
    );
  }
  get(key: string): Promise<GetResult> {
    return Promise.resolve().then(() => this.#fail("get", key));
  }
  head(key: string): Promise<HeadResult> {
    return Promise.resolve().then(() => this.#fail("head", key));
  }
  put(key: string): Promise<{ etag: string }> {
    return Promise.resolve().then(() => this.#fail("put", key));
  }
  delete(key: string): Promise<void> {
    return Promise.resolve().then(() => this.#fail("delete", key));
  }
  list(prefix: string): AsyncIterable<ListItem> {
    const fail = () => this.#fail("list", prefix);
    return {
      [Symbol.asyncIterator]: () => ({ next: () => Promise.resolve().then(fail) }),
    };
  }
}

async function exists(path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false);
}

async function journalMode(path: string): Promise<string> {
  const db = createClient({ url: `file:${path}` });
  try {
    return String((await db.execute("PRAGMA journal_mode")).rows[0]?.[0]);
  } finally {
    db.close();
  }
}

describe("restoreIfMissing()", () => {
  let dir: string;
  let walDb: string;
  let staleWal: Uint8Array;
  let staleShm: Uint8Array;
  let store: LocalStore;
  let sha256: string;
  let report: SyncReport;

  before(async () => {
    dir = await makeTempDir("restore-missing");
    // A WAL-mode database with 50 commits, published as "app".
    walDb = join(dir, "source", "app.db");
    await mkdir(join(dir, "source"));
    await makeDb(walDb, 50, { mode: "wal", payload: 2500 });
    store = new LocalStore(join(dir, "store"));
    report = await syncDatabase(walDb, {
      stores: [store],
      hostname: "h1",
      name: "app",
      spoolDir: join(dir, "spool"),
    });
    sha256 = report.imageSha256!;
    // The live -wal and -shm of another database, with committed frames no checkpoint has copied yet.
    const other = join(dir, "other.db");
    const writer = await startWriter(other, { mode: "wal", payload: 2500 });
    try {
      await writer.waitFor(20);
      staleWal = new Uint8Array(await readFile(`${other}-wal`));
      staleShm = new Uint8Array(await readFile(`${other}-shm`));
    } finally {
      await writer.stop();
    }
    assert.ok((parseWal(staleWal)?.frames ?? 0) > 0, "the stale -wal holds frames SQLite would apply");
  });
  after(() => removeDir(dir));

  it("restores a missing WAL-mode database after removing the -wal and -shm another database left there", async () => {
    const path = join(dir, "node1", "data", "app.db"); // parent directories do not exist yet
    await mkdir(join(dir, "node1", "data"), { recursive: true });
    await writeFile(`${path}-wal`, staleWal);
    await writeFile(`${path}-shm`, staleShm);
    const result = await restoreIfMissing(path, { stores: [store], name: "app" });
    assert.equal(result.restored, true);
    if (!result.restored) return;
    assert.equal(result.sequence, 1);
    assert.equal(result.sha256, sha256);
    assert.equal(result.bytes, report.imageLength);
    assert.deepEqual(result.removed, [`${path}-wal`, `${path}-shm`]);
    assert.deepEqual(result.warnings, []);
    assert.deepEqual(
      (await readdir(join(dir, "node1", "data"))).sort(),
      ["app.db"],
      "no stale or temporary file",
    );
    // The SHA-256 the sync computed while reading the live source, before any of this ran.
    assert.equal(createHash("sha256").update(await readFile(path)).digest("hex"), sha256);
    assert.deepEqual([...(await readFile(path)).subarray(18, 20)], [2, 2], "a WAL-mode header");
    assert.equal(await journalMode(path), "wal", "SQLite opens the restored file in WAL mode");
    const state = await checkWriterDb(path);
    assert.deepEqual(state, { integrity: "ok", last: 50, rows: 50, minK: 1, maxK: 50 });
  });

  it("creates the parent directories and keeps a rollback-journal image in rollback-journal mode", async () => {
    const source = join(dir, "source", "rollback.db");
    await makeDb(source, 30, { payload: 2500 });
    await syncDatabase(source, {
      stores: [store],
      hostname: "h1",
      name: "rollback",
      spoolDir: join(dir, "spool"),
    });
    const path = join(dir, "fresh-root", "a", "b", "rollback.db");
    const result = await restoreIfMissing(path, { stores: [store], name: "rollback" });
    assert.equal(result.restored, true);
    assertBytes(
      new Uint8Array(await readFile(path)),
      new Uint8Array(await readFile(source)),
      "restored database",
    );
    assert.equal(await journalMode(path), "delete");
    assert.equal((await checkWriterDb(path)).last, 30);
  });

  it("leaves an existing database and its -wal untouched", async () => {
    const path = join(dir, "existing", "app.db");
    await mkdir(join(dir, "existing"));
    const bytes = new TextEncoder().encode("not a snapshot, but the user's own file");
    await writeFile(path, bytes);
    await writeFile(`${path}-wal`, staleWal);
    const old = new Date("2020-01-02T03:04:05Z");
    await utimes(path, old, old);
    const result = await restoreIfMissing(path, { stores: [store], name: "app" });
    assert.deepEqual(result, { restored: false, reason: "exists", removed: [], warnings: [] });
    assertBytes(new Uint8Array(await readFile(path)), bytes, "existing database");
    assert.equal((await stat(path)).mtimeMs, old.getTime());
    assertBytes(new Uint8Array(await readFile(`${path}-wal`)), staleWal, "its -wal");
  });

  it("reports no snapshot, restores nothing, and still clears a stale -journal", async () => {
    const path = join(dir, "new", "app.db");
    await mkdir(join(dir, "new"));
    await writeFile(`${path}-journal`, new Uint8Array(512).fill(7));
    const result = await restoreIfMissing(path, { stores: [store], name: "never-synced" });
    assert.deepEqual(result, {
      restored: false,
      reason: "no snapshot",
      removed: [`${path}-journal`],
      warnings: [],
    });
    assert.deepEqual(await readdir(join(dir, "new")), []);
  });

  it("skips a failing store when another has the snapshot, and takes the newest pointer", async () => {
    // A second store that lags: it holds an older snapshot (sequence 1) of "lagging".
    const source = join(dir, "source", "lagging.db");
    await makeDb(source, 10, { payload: 2500 });
    const old = new LocalStore(join(dir, "store-old"));
    await syncDatabase(source, {
      stores: [old, store],
      hostname: "h1",
      name: "lagging",
      spoolDir: join(dir, "sp2"),
    });
    const more = await startWriter(source, { mode: "delete", count: 5, payload: 2500 });
    await more.waitFor(15);
    await more.stop();
    await syncDatabase(source, {
      stores: [store],
      hostname: "h1",
      name: "lagging",
      spoolDir: join(dir, "sp3"),
    });
    const down = new UnreachableStore();
    const path = join(dir, "failover", "lagging.db");
    const result = await restoreIfMissing(path, { stores: [down, old, store], name: "lagging" });
    assert.equal(result.restored, true);
    if (!result.restored) return;
    assert.equal(result.sequence, 2, "the newest of the answering stores' snapshots");
    assert.equal(result.store, store.description);
    assert.equal(result.warnings.length, 1);
    assert.match(result.warnings[0]!, /skipped s3:\/\/unreachable\/backups: .*connection refused/);
    assert.ok(down.calls > 0);
    assert.equal((await checkWriterDb(path)).last, 15);
    assertBytes(
      new Uint8Array(await readFile(path)),
      new Uint8Array(await readFile(source)),
      "restored database",
    );
  });

  it("throws when no store can be asked, and when the only store that answers has no snapshot", async () => {
    const path = join(dir, "offline", "app.db");
    await rejectsWithCode(
      restoreIfMissing(path, { stores: [new UnreachableStore()], name: "app" }),
      "S3_REQUEST_FAILED",
      /Cannot tell whether a snapshot of "app" exists .*no store answered.*connection refused/,
    );
    // An empty store answering does not prove there is no snapshot: the unreachable one may hold it.
    const empty = new LocalStore(join(dir, "empty-store"));
    await rejectsWithCode(
      restoreIfMissing(path, { stores: [empty, new UnreachableStore()], name: "app" }),
      "S3_REQUEST_FAILED",
      /1 of 2 stores have none, and the others failed/,
    );
    assert.equal(await exists(path), false);
  });
});
