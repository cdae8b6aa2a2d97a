import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { LibsqlBatchError, LibsqlError } from "@libsql/core/api";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { manifestKey, pointerKey } from "../../src/manifest/keys.ts";
import { decodePointer, encodePointer } from "../../src/manifest/codec.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import type { GetOptions, GetResult, PutOptions, StoreCallOptions } from "../../src/store/types.ts";
import { openReplica, type OpenReplicaOptions } from "../../src/replica/open.ts";
import type { Replica } from "../../src/replica/replica.ts";
import { TesseraError } from "../../src/errors.ts";
import { loadLatest, loadSequence } from "../../src/manifest/catalog.ts";
import { idToHex } from "../../src/chunk/ids.ts";
import { damageStoredChunk, storedChunks } from "../_helpers/stored.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

/** A real local store that records writes and can be made to fail reads (a fault, not a fake). */
class WatchedStore extends LocalStore {
  readonly writes: string[] = [];
  readonly gets: string[] = [];
  failing = false;
  override async get(key: string, options?: GetOptions): Promise<GetResult> {
    this.gets.push(key);
    if (this.failing) throw new TesseraError("STORE_IO", `injected failure reading ${key}`);
    return await super.get(key, options);
  }
  override async put(key: string, body: Uint8Array, options?: PutOptions) {
    this.writes.push(`put ${key}`);
    return await super.put(key, body, options);
  }
  override async delete(key: string, options?: StoreCallOptions) {
    this.writes.push(`delete ${key}`);
    return await super.delete(key, options);
  }
}

const NAME = "replica-test";

async function makeSource(path: string, rows: number): Promise<void> {
  const db = createClient({ url: `file:${path}` });
  await db.executeMultiple(`
    PRAGMA page_size = 4096;
    CREATE TABLE items (k INTEGER PRIMARY KEY, v TEXT, b BLOB);
    CREATE TABLE meta (last INTEGER);
    INSERT INTO meta VALUES (0);
  `);
  db.close();
  await addRows(path, rows);
}

async function addRows(path: string, n: number): Promise<void> {
  const db = createClient({ url: `file:${path}` });
  const last = Number((await db.execute("SELECT last FROM meta")).rows[0]![0]);
  const stmts = [];
  for (let k = last + 1; k <= last + n; k++) {
    stmts.push({ sql: "INSERT INTO items VALUES (?, ?, randomblob(300))", args: [k, `row ${k}`] });
  }
  stmts.push({ sql: "UPDATE meta SET last = ?", args: [last + n] });
  await db.batch(stmts, "write");
  db.close();
}

async function count(client: { execute(sql: string): Promise<{ rows: ArrayLike<unknown>[] }> }) {
  return Number((await client.execute("SELECT count(*) FROM items")).rows[0]![0]);
}

for (const engine of ["wasm", "native"] as const) {
  describe(`openReplica() with the ${engine} engine`, () => {
    let dir: string;
    let source: string;
    let store: WatchedStore;
    let spool: string;
    const open: Replica[] = [];

    const sync = async () =>
      await syncDatabase(source, {
        stores: [store],
        hostname: "h",
        name: NAME,
        spoolDir: spool,
        chunkSize: 16384,
      });
    const openIt = async (options: OpenReplicaOptions = {}) => {
      const replica = await openReplica(NAME, { store, engine, pollIntervalMs: 0, ...options });
      open.push(replica);
      return replica;
    };

    before(async () => {
      dir = await makeTempDir(`replica-${engine}`);
    });
    after(async () => {
      await removeDir(dir);
    });
    let n = 0;
    const fresh = async (rows = 200) => {
      const sub = join(dir, String(++n));
      source = join(sub, "source.db");
      spool = join(sub, "spool");
      store = new WatchedStore(join(sub, "store"));
      await import("node:fs/promises").then((fs) => fs.mkdir(sub, { recursive: true }));
      await makeSource(source, rows);
      await sync();
    };
    afterEach(() => {
      for (const r of open.splice(0)) r.close();
    });

    it("reads what the source held at the sync, and reports the snapshot", async () => {
      await fresh(300);
      const replica = await openIt();
      assert.equal(await count(replica), 300);
      const row = (await replica.execute({ sql: "SELECT k, v FROM items WHERE k = ?", args: [7] })).rows[0]!;
      assert.equal(row.k, 7);
      assert.equal(row.v, "row 7");
      assert.equal(replica.sequence, 1);
      assert.equal(replica.protocol, "file");
      assert.equal(replica.closed, false);
      const integrity = await replica.execute("PRAGMA integrity_check");
      assert.equal(integrity.rows[0]![0], "ok");
      const status = replica.status();
      assert.equal(status.engine, engine);
      assert.equal(status.sequence, 1);
      assert.equal(status.database, NAME);
    });

    it("refuses every write with SQLite's read-only error, and writes nothing to the store", async () => {
      await fresh(50);
      const replica = await openIt();
      store.writes.length = 0;
      const before = await listFiles(join(dir, String(n), "store"));
      for (
        const sql of [
          "INSERT INTO items (k, v) VALUES (1000, 'x')",
          "UPDATE meta SET last = 99",
          "DELETE FROM items",
          "CREATE TABLE more (x)",
          "DROP TABLE items",
        ]
      ) {
        await assert.rejects(replica.execute(sql), (error: unknown) => {
          assert.ok(error instanceof LibsqlError, `${sql}: ${error}`);
          assert.equal(error.code, "SQLITE_READONLY", sql);
          assert.equal(error.rawCode, 8, sql);
          assert.match(error.message, /attempt to write a readonly database/, sql);
          return true;
        });
      }
      await assert.rejects(
        replica.transaction("write"),
        (e: unknown) => e instanceof LibsqlError && e.code === "SQLITE_READONLY",
      );
      await assert.rejects(
        replica.batch(["SELECT 1"], "write"),
        (e: unknown) => e instanceof LibsqlError && e.code === "SQLITE_READONLY",
      );
      await assert.rejects(
        replica.batch(["SELECT 1", "INSERT INTO items (k) VALUES (5000)"]),
        (e: unknown) =>
          e instanceof LibsqlBatchError && e.code === "SQLITE_READONLY" && e.statementIndex === 1,
      );
      await assert.rejects(
        replica.executeMultiple("SELECT 1; INSERT INTO items (k) VALUES (5001);"),
        (e: unknown) => e instanceof LibsqlError && e.code === "SQLITE_READONLY",
      );
      const tx = await replica.transaction("read");
      await assert.rejects(
        tx.execute("DELETE FROM items"),
        (e: unknown) => e instanceof LibsqlError && e.code === "SQLITE_READONLY",
      );
      tx.close();
      assert.equal(await count(replica), 50, "the replica still reads after refused writes");
      assert.deepEqual(store.writes, []);
      assert.deepEqual(await listFiles(join(dir, String(n), "store")), before);
      assert.equal((await readFile(source)).length > 0, true);
    });

    it("refuses, through SQLite, every statement that could write a file or change the connection", async () => {
      await fresh(50);
      const replica = await openIt();
      const scratch = join(dir, String(n), "scratch");
      await mkdir(scratch, { recursive: true });
      const existing = join(scratch, "existing.db");
      const existingDb = createClient({ url: `file:${existing}` });
      await existingDb.execute("CREATE TABLE t (x)");
      existingDb.close();
      const existingBytes = await readFile(existing);
      const at = (name: string) => join(scratch, name).replaceAll("'", "''");
      const refused: [sql: string, code: "SQLITE_AUTH" | "SQLITE_READONLY"][] = [
        [`VACUUM INTO '${at("vacuum.db")}'`, "SQLITE_READONLY"],
        [`VACUUM INTO 'file:${at("vacuum-uri.db")}?mode=rwc'`, "SQLITE_READONLY"],
        ["VACUUM", "SQLITE_READONLY"],
        [`ATTACH '${at("new.db")}' AS x`, "SQLITE_AUTH"],
        [`ATTACH 'file:${at("new-uri.db")}?mode=rwc' AS x`, "SQLITE_AUTH"],
        [`ATTACH '${at("existing.db")}' AS x`, "SQLITE_AUTH"],
        ["ATTACH ':memory:' AS m", "SQLITE_AUTH"],
        ["PRAGMA writable_schema = 1", "SQLITE_AUTH"],
        ["PRAGMA journal_mode = WAL", "SQLITE_AUTH"],
        ["PRAGMA user_version = 5", "SQLITE_AUTH"],
        ["PRAGMA query_only = 0", "SQLITE_AUTH"],
        ["PRAGMA temp_store = FILE", "SQLITE_AUTH"],
        [`PRAGMA temp_store_directory = '${at("")}'`, "SQLITE_AUTH"],
        [`PRAGMA data_store_directory = '${at("")}'`, "SQLITE_AUTH"],
        ["SELECT load_extension('x')", "SQLITE_AUTH"],
        [`SELECT writefile('${at("written.txt")}', 'x')`, "SQLITE_AUTH"],
        ["SELECT readfile('/etc/hostname')", "SQLITE_AUTH"],
        ["CREATE TEMP TABLE tmp (x)", "SQLITE_AUTH"],
        ["CREATE TEMP VIEW tmp_v AS SELECT 1", "SQLITE_AUTH"],
      ];
      const refusedAs = (sql: string, code: string) => (error: unknown) => {
        assert.ok(error instanceof LibsqlError, `${sql}: ${error}`);
        assert.equal(error.code, code, `${sql}: ${error.message}`);
        return true;
      };
      for (const [sql, code] of refused) {
        await assert.rejects(replica.execute(sql), refusedAs(sql, code));
        await assert.rejects(replica.executeMultiple(`SELECT 1; ${sql}; SELECT 2;`), refusedAs(sql, code));
        await assert.rejects(
          replica.batch(["SELECT 1", sql], "read"),
          (e: unknown) => e instanceof LibsqlBatchError && e.code === code && e.statementIndex === 1,
        );
        const tx = await replica.transaction("read");
        try {
          await assert.rejects(tx.execute(sql), refusedAs(sql, code));
        } finally {
          tx.close();
        }
      }
      assert.deepEqual(await readdir(scratch), ["existing.db"], "no file appeared");
      assert.deepEqual(await readFile(existing), existingBytes, "the existing file is unchanged");
      const pragmas = await replica.execute("PRAGMA query_only");
      assert.equal(Number(pragmas.rows[0]![0]), 0);
      assert.equal((await replica.execute("PRAGMA table_info(items)")).rows.length, 3);
      assert.ok(Number((await replica.execute("PRAGMA page_count")).rows[0]![0]) > 0);
      assert.equal(Number((await replica.execute("PRAGMA user_version")).rows[0]![0]), 0);
      assert.equal(await count(replica), 50, "the replica still reads after refused statements");
    });

    it("moves to a newer snapshot only when refreshed (autoRefresh off), never inside a transaction", async () => {
      await fresh(100);
      const replica = await openIt({ autoRefresh: false });
      await addRows(source, 25);
      await sync();
      assert.equal(await count(replica), 100);
      await replica.refresh(0);
      assert.equal(await count(replica), 100, "refresh(0) does not reach the store");
      const tx = await replica.transaction("read");
      assert.equal(await count(tx), 100);
      const updated = await replica.refresh(1);
      assert.ok(updated > 0 && updated <= Date.now());
      assert.equal(replica.sequence, 2);
      assert.equal(await count(replica), 125, "a new transaction sees the new snapshot");
      assert.equal(await count(tx), 100, "the open transaction keeps its snapshot");
      const rows = await tx.batch(["SELECT count(*) FROM items", "SELECT last FROM meta"]);
      assert.equal(Number(rows[0]!.rows[0]![0]), 100);
      assert.equal(Number(rows[1]!.rows[0]![0]), 100);
      await tx.commit();
      assert.equal(tx.closed, true);
      await assert.rejects(
        tx.execute("SELECT 1"),
        (e: unknown) => e instanceof LibsqlError && e.code === "TRANSACTION_CLOSED",
      );
    });

    it("autoRefresh switches at each transaction to what the poller prepared, without waiting", async () => {
      await fresh(100);
      const replica = await openIt({ autoRefresh: true, pollIntervalMs: 20 });
      const seen = new Promise<number>((resolve) => replica.on("snapshot", (e) => resolve(e.sequence)));
      await addRows(source, 10);
      await sync();
      const deadline = Date.now() + 10_000;
      let sequence: number | undefined;
      void seen.then((s) => (sequence = s));
      while (sequence === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(sequence, 2);
      assert.equal(await count(replica), 110);
      assert.equal(replica.sequence, 2);
      const status = replica.status();
      assert.ok(status.checks >= 2);
      assert.equal(status.lastError, undefined);
    });

    it("answers the tessera_snapshot pragmas", async () => {
      await fresh(40);
      const replica = await openIt({ autoRefresh: false });
      const one = async (sql: string) => (await replica.execute(sql)).rows[0]![0];
      assert.equal(await one("PRAGMA tessera_snapshot_sequence"), 1);
      const manifest = (await loadLatest(store, NAME)).manifest;
      assert.equal(await one("PRAGMA tessera_snapshot_ctime"), manifest.sourceMtimeMs / 1000);
      assert.equal(await one("pragma tessera_snapshot_updated;"), replica.snapshotUpdated / 1000);
      assert.equal(await one("PRAGMA tessera_snapshot_auto_refresh"), 0);
      assert.equal(await one("PRAGMA tessera_snapshot_auto_refresh(1)"), 1);
      assert.equal(replica.autoRefresh, true);
      assert.equal(await one("PRAGMA tessera_snapshot_auto_refresh = 0"), 0);
      await addRows(source, 5);
      await sync();
      assert.equal(await one("PRAGMA tessera_snapshot_async_reload"), 0, "nothing newer was prepared yet");
      await replica.refresh(1).then(() => replica.refresh(0));
      assert.equal(await one("PRAGMA tessera_snapshot_sequence"), 2);
      await addRows(source, 5);
      await sync();
      const refreshed = await one("PRAGMA tessera_snapshot_refresh(2)");
      assert.equal(typeof refreshed, "number");
      assert.equal(await one("PRAGMA tessera_snapshot_sequence"), 3);
      assert.equal(await count(replica), 50);
      const result = await replica.execute("PRAGMA tessera_snapshot_lag");
      assert.deepEqual(result.columns, ["tessera_snapshot_lag"]);
      await assert.rejects(
        replica.execute("PRAGMA tessera_snapshot_nonsense"),
        (e: unknown) =>
          e instanceof LibsqlError && /unknown pragma tessera_snapshot_nonsense/.test(e.message),
      );
      await assert.rejects(replica.execute("PRAGMA tessera_snapshot_refresh(7)"), LibsqlError);
    });

    it("keeps serving its snapshot when the store fails, and reports the failure", async () => {
      await fresh(60);
      const replica = await openIt({ autoRefresh: true });
      const errors: Error[] = [];
      replica.on("error", (e) => errors.push(e.error));
      store.failing = true;
      await assert.rejects(
        replica.refresh(1),
        (e: unknown) => e instanceof TesseraError && e.code === "STORE_IO",
      );
      assert.equal(await count(replica), 60);
      const status = replica.status();
      assert.equal(status.consecutiveFailures, 1);
      assert.equal(status.lastError?.code, "STORE_IO");
      assert.equal(errors.length, 1);
      assert.equal(
        await replica.execute("PRAGMA tessera_snapshot_refresh(1)").then((r) => typeof r.rows[0]![0]),
        "string",
      );
      store.failing = false;
      await replica.refresh(1);
      assert.equal(replica.status().consecutiveFailures, 0);
    });

    it("never serves a newer snapshot whose manifest or chunk is damaged", async () => {
      await fresh(80);
      const replica = await openIt({ autoRefresh: true });
      // A pointer naming a manifest whose hash does not match.
      await addRows(source, 20);
      await sync();
      const good = await store.get(pointerKey(NAME));
      assert.equal(good.status, "ok");
      const pointer = await decodePointer((good as { body: Uint8Array }).body);
      await store.put(
        pointerKey(NAME),
        await encodePointer({ ...pointer, manifestSha256: new Uint8Array(32).fill(9) }),
      );
      await assert.rejects(
        replica.refresh(1),
        (e: unknown) => e instanceof TesseraError && e.code === "CHECKSUM_MISMATCH",
      );
      assert.equal(await count(replica), 80);
      assert.equal(replica.sequence, 1);
      // The right pointer, but one of the new snapshot's chunks damaged in the store.
      await store.put(pointerKey(NAME), (good as { body: Uint8Array }).body);
      const { manifest } = await loadLatest(store, NAME);
      const old = new Set(
        (await storedChunks(store, (await loadSequence(store, NAME, 1)).manifest)).map((c) => idToHex(c.id)),
      );
      const changed = (await storedChunks(store, manifest)).find((c) => !old.has(idToHex(c.id)));
      assert.ok(changed, "the new snapshot has a chunk the old one lacks");
      await damageStoredChunk(store, changed);
      await assert.rejects(
        replica.refresh(1),
        (e: unknown) =>
          e instanceof TesseraError && ["CORRUPT_CHUNK", "CHECKSUM_MISMATCH"].includes(e.code) &&
          e.message.includes(idToHex(changed.id)),
      );
      assert.equal(await count(replica), 80);
      assert.equal(replica.sequence, 1);
      assert.equal((await replica.execute("PRAGMA integrity_check")).rows[0]![0], "ok");
    });

    it("with maxStalenessMs, a transaction waits for a check, and fails when none can be made", async () => {
      await fresh(30);
      const replica = await openIt({ autoRefresh: false, maxStalenessMs: 0 });
      await addRows(source, 3);
      await sync();
      assert.equal(await count(replica), 33, "the check before the transaction found the new snapshot");
      store.failing = true;
      await assert.rejects(
        replica.execute("SELECT 1"),
        (e: unknown) => e instanceof TesseraError && e.code === "STALE",
      );
      store.failing = false;
    });

    if (engine === "wasm") {
      it("two generations share their unchanged chunks; an old one leaves memory with its last reader", async () => {
        await fresh(2000);
        const replica = await openIt({ autoRefresh: false });
        const { manifest } = await loadLatest(store, NAME);
        const image = manifest.imageLength;
        const first = replica.status().memory;
        assert.ok(
          first.chunkBytes <= image && first.chunkBytes > image / 2,
          `${first.chunkBytes} of ${image}`,
        );
        const tx = await replica.transaction("read");
        assert.equal(await count(tx), 2000);
        const db = createClient({ url: `file:${source}` });
        await db.execute("UPDATE items SET v = 'changed' WHERE k = 1000");
        db.close();
        await sync();
        await replica.refresh(1);
        assert.equal(replica.sequence, 2);
        const both = replica.status().memory;
        const extra = both.chunkBytes - first.chunkBytes;
        assert.ok(extra > 0 && extra <= 3 * 16384, `the second generation added ${extra} bytes`);
        assert.equal(both.snapshots, 2, "the transaction still reads the first");
        assert.equal(await count(tx), 2000);
        tx.close();
        assert.equal((await replica.execute("SELECT v FROM items WHERE k = 1000")).rows[0]![0], "changed");
        const after = replica.status().memory;
        assert.equal(after.snapshots, 1);
        assert.ok(after.chunkBytes <= image, `${after.chunkBytes} bytes held for a ${image}-byte image`);
      });
    }

    it("a refresh fetches only the chunks that changed", async () => {
      await fresh(2000);
      const replica = await openIt({ autoRefresh: true });
      const fetched: number[] = [];
      replica.on("snapshot", (e) => fetched.push(e.chunksFetched));
      for (let i = 0; i < 4; i++) {
        const db = createClient({ url: `file:${source}` });
        await db.execute({
          sql: "UPDATE items SET v = ? WHERE k = ?",
          args: [`changed ${i}`, 100 + i * 500],
        });
        db.close();
        await sync();
        await replica.refresh(1);
        assert.equal(
          (await replica.execute("SELECT v FROM items WHERE k = ?", [100 + i * 500])).rows[0]![0],
          `changed ${i}`,
        );
      }
      assert.equal(fetched.length, 4);
      for (const f of fetched) assert.ok(f >= 1 && f <= 3, `fetched ${fetched.join(", ")} chunks`);
      assert.equal(replica.sequence, 5);
      assert.equal((await replica.execute("PRAGMA integrity_check")).rows[0]![0], "ok");
    });

    it("opens a pinned snapshot from a manifest key, file or bytes, and by tessera:// URL", async () => {
      await fresh(20);
      await addRows(source, 5);
      await sync();
      const first = await store.get(manifestKey(NAME, 1));
      assert.equal(first.status, "ok");
      const bytes = (first as { body: Uint8Array }).body;
      const file = join(dir, String(n), "manifest-1");
      await writeFile(file, bytes);
      for (const pinned of [manifestKey(NAME, 1), file, bytes]) {
        const replica = await openReplica(pinned, { store, engine, pollIntervalMs: 10 });
        open.push(replica);
        assert.equal(replica.sequence, 1);
        assert.equal(await count(replica), 20);
        await replica.refresh(2);
        assert.equal(replica.sequence, 1, "a pinned snapshot never moves");
        assert.equal(replica.status().follows, false);
      }
      const byUrl = await syncDatabase(source, { stores: [store], hostname: "edge-host", spoolDir: spool });
      const url = await openReplica(`tessera:///${source.replace(/^\//, "")}`, {
        store,
        engine,
        hostname: "edge-host",
      });
      open.push(url);
      assert.equal(url.status().database, byUrl.name);
      assert.equal(await count(url), 25);
    });

    it("a database replaced by another file with the same schema cookie is read with its own schema", async () => {
      await fresh(10);
      const sub = join(dir, String(n));
      const a = join(sub, "a.db");
      const b = join(sub, "b.db");
      for (
        const [path, sql] of [[a, "CREATE TABLE t (a); INSERT INTO t VALUES (1);"], [
          b,
          "CREATE TABLE u (b, c); INSERT INTO u VALUES (2, 3);",
        ]]
      ) {
        const db = createClient({ url: `file:${path}` });
        await db.executeMultiple(sql!);
        assert.equal((await db.execute("PRAGMA schema_version")).rows[0]![0], 1);
        db.close();
      }
      const publish = (path: string, spoolName: string) =>
        syncDatabase(path, { stores: [store], hostname: "h", name: "swap", spoolDir: join(sub, spoolName) });
      await publish(a!, "spool-a");
      const replica = await openReplica("swap", { store, engine, pollIntervalMs: 0, autoRefresh: false });
      open.push(replica);
      assert.deepEqual((await replica.execute("SELECT a FROM t")).rows.map((r) => r[0]), [1]);
      await publish(b!, "spool-b");
      await replica.refresh(1);
      assert.equal(replica.sequence, 2);
      assert.deepEqual((await replica.execute("SELECT b, c FROM u")).rows.map((r) => [r[0], r[1]]), [[2, 3]]);
      await assert.rejects(
        replica.execute("SELECT a FROM t"),
        (e: unknown) => e instanceof LibsqlError && /no such table: t/.test(e.message),
      );
      assert.deepEqual((await replica.execute("SELECT name FROM sqlite_schema")).rows.map((r) => r[0]), [
        "u",
      ]);
    });

    it("after close, every call fails with CLIENT_CLOSED", async () => {
      await fresh(10);
      const replica = await openIt();
      replica.close();
      assert.equal(replica.closed, true);
      await assert.rejects(
        replica.execute("SELECT 1"),
        (e: unknown) => e instanceof LibsqlError && e.code === "CLIENT_CLOSED",
      );
      await assert.rejects(
        replica.batch(["SELECT 1"]),
        (e: unknown) => e instanceof LibsqlError && e.code === "CLIENT_CLOSED",
      );
      replica.close();
    });

    it("fails to open with NOT_FOUND naming the database when nothing was synced", async () => {
      await fresh(10);
      await assert.rejects(
        openReplica("no-such-db", { store, engine }),
        (e: unknown) => e instanceof TesseraError && e.code === "NOT_FOUND" && /no-such-db/.test(e.message),
      );
    });
  });
}

async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else out.push(p);
    }
  };
  await walk(root);
  return out.sort();
}
