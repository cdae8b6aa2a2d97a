/**
 * The replicating client against real SQLite files and real directory stores: the same results as a plain
 * @libsql/client, and committed writes published; outages are injected in front of the store.
 */

import assert from "node:assert/strict";
import { copyFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Client, createClient, type ResultSet } from "@libsql/client";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { TesseraError } from "../../src/errors.ts";
import { decodePointer } from "../../src/manifest/codec.ts";
import { pointerKey } from "../../src/manifest/keys.ts";
import { createReplicatingClient, type ReplicatingClientOptions } from "../../src/config/client.ts";
import { loadSequence } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { LocalStore } from "../../src/store/local.ts";
import type { BlobStore } from "../../src/store/types.ts";
import { runScript } from "../_helpers/run.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { OutageStore, waitUntil } from "./_outage.ts";

async function pointerSequence(store: BlobStore, name: string): Promise<number> {
  const got = await store.get(pointerKey(name));
  if (got.status !== "ok") return 0;
  return (await decodePointer(got.body)).sequence;
}

/** Restores snapshot `sequence` into a new file of `dir` and returns what `sql` reads from it. */
async function restoredRows(
  store: BlobStore,
  name: string,
  sequence: number,
  dir: string,
  sql: string,
): Promise<{ rows: unknown[]; integrity: unknown }> {
  const { manifest } = await loadSequence(store, name, sequence);
  const out = join(dir, `restored-${sequence}-${crypto.randomUUID().slice(0, 8)}.db`);
  await restoreImage({ manifest, chunks: new StoreChunkSource(store), out });
  const db = createClient({ url: `file:${out}` });
  try {
    const integrity = (await db.execute("PRAGMA integrity_check")).rows[0]?.[0];
    return { rows: plainRows(await db.execute(sql)), integrity };
  } finally {
    db.close();
  }
}

function plainRows(result: ResultSet): unknown[] {
  return result.rows.map((row) => ({ values: Array.from(row), byName: { ...row } }));
}

// Everything a caller can see of a result or an error, for deepEqual across two clients.
function outcome(value: unknown): unknown {
  if (value instanceof Error) {
    const e = value as Error & Record<string, unknown>;
    return {
      error: e.constructor.name,
      name: e.name,
      message: e.message,
      code: e.code,
      extendedCode: e.extendedCode,
      rawCode: e.rawCode,
      statementIndex: e.statementIndex,
    };
  }
  if (Array.isArray(value)) return value.map(outcome);
  if (value !== null && typeof value === "object" && "rows" in value) {
    const r = value as ResultSet;
    return {
      columns: r.columns,
      columnTypes: r.columnTypes,
      rows: r.rows,
      plain: plainRows(r),
      rowsAffected: r.rowsAffected,
      lastInsertRowid: r.lastInsertRowid,
      json: r.toJSON(),
    };
  }
  return { value };
}

async function settle(call: () => Promise<unknown>): Promise<unknown> {
  try {
    return outcome(await call());
  } catch (error) {
    return outcome(error);
  }
}

// The same calls, in order, against any Client; each step's result or error.
async function workload(db: Client): Promise<unknown[]> {
  const steps: unknown[] = [];
  const step = async (call: () => Promise<unknown>) => steps.push(await settle(call));
  await step(() =>
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, score REAL, data BLOB)")
  );
  await step(() =>
    db.execute({
      sql: "INSERT INTO t (name, score, data) VALUES (?, ?, ?)",
      args: ["a", 1.5, new Uint8Array([1, 2, 3])],
    })
  );
  await step(() => db.execute("INSERT INTO t (name, score) VALUES (:n, :s)", { n: "b", s: 2 }));
  await step(() => db.execute("INSERT INTO t (name) VALUES ('c') RETURNING id, name"));
  await step(() =>
    db.batch([
      { sql: "INSERT INTO t (name, score) VALUES (?, ?)", args: ["d", 4] },
      ["UPDATE t SET score = score + ? WHERE name = ?", [1, "a"]],
      "SELECT name, score FROM t ORDER BY id",
    ], "write")
  );
  // A constraint violation in the middle of a batch: nothing of it stays.
  await step(() =>
    db.batch([
      "INSERT INTO t (name) VALUES ('e')",
      "INSERT INTO t (name) VALUES ('a')",
    ], "write")
  );
  await step(() => db.batch(["SELECT count(*) AS n FROM t"], "read"));
  await step(async () => {
    const tx = await db.transaction("write");
    const results = [
      await tx.execute({ sql: "INSERT INTO t (name) VALUES (?)", args: ["f"] }),
      await tx.batch(["UPDATE t SET score = 9 WHERE name = 'f'", "SELECT * FROM t WHERE name = 'f'"]),
    ];
    await tx.commit();
    return [...results, { closed: tx.closed }];
  });
  await step(async () => {
    const tx = await db.transaction();
    const inserted = await tx.execute("INSERT INTO t (name) VALUES ('rolled back')");
    await tx.rollback();
    return [inserted, { closed: tx.closed }];
  });
  await step(async () => {
    const tx = await db.transaction("read");
    try {
      const count = await tx.execute("SELECT count(*) FROM t");
      const write = await settle(() => tx.execute("INSERT INTO t (name) VALUES ('read-only')"));
      return [count, write];
    } finally {
      tx.close();
    }
  });
  await step(() =>
    db.executeMultiple("CREATE TABLE u (x); INSERT INTO u VALUES (1); INSERT INTO u VALUES (2);")
  );
  await step(() => db.executeMultiple("INSERT INTO u VALUES (3); INSERT INTO missing VALUES (1);"));
  await step(() =>
    db.migrate([
      "CREATE TABLE v (k TEXT PRIMARY KEY, n INTEGER)",
      { sql: "INSERT INTO v VALUES (?, ?)", args: ["one", 1] },
    ])
  );
  await step(() => db.migrate(["CREATE TABLE w (k)", "CREATE TABLE w (k)"]));
  await step(() => db.execute("SELEC 1"));
  await step(() => db.execute("INSERT INTO t (name) VALUES ('a')"));
  await step(() => db.execute("SELECT * FROM nowhere"));
  await step(() => db.execute({ sql: "SELECT ?", args: [] }));
  await step(() => db.execute("SELECT id, name, score, data, typeof(data) FROM t ORDER BY id"));
  await step(() => db.execute("SELECT x FROM u ORDER BY x"));
  await step(() => db.execute("SELECT name FROM sqlite_schema ORDER BY name"));
  steps.push({ protocol: db.protocol, closed: db.closed });
  return steps;
}

describe("createReplicatingClient()", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("repl-client");
  });
  after(async () => {
    await removeDir(dir);
  });

  async function open(work: string, store: BlobStore, more: Partial<ReplicatingClientOptions> = {}) {
    return await createReplicatingClient({
      url: `file:${join(work, "app.db")}`,
      store,
      hostname: "client-host",
      spoolDir: join(work, "spool"),
      debounceMs: 20,
      maxDelayMs: 200,
      ...more,
    });
  }

  it("gives the same results and errors as a plain @libsql/client for every call", async () => {
    const work = await makeTempDir("client-parity");
    try {
      const plain = createClient({ url: `file:${join(work, "plain.db")}` });
      const store = new LocalStore(join(work, "store"));
      const client = await open(work, store);
      let expected: unknown[];
      let actual: unknown[];
      try {
        expected = await workload(plain);
        actual = await workload(client);
      } finally {
        plain.close();
        await client.closeAsync();
      }
      assert.equal(actual.length, expected.length);
      for (const [i, want] of expected.entries()) assert.deepEqual(actual[i], want, `step ${i}`);
      // The workload reaches the errors it means to compare.
      const errors = JSON.stringify(expected, (_, v) => typeof v === "bigint" ? String(v) : v);
      for (const code of ["SQLITE_CONSTRAINT", "SQLITE_ERROR"]) {
        assert.ok(errors.includes(`"code":"${code}"`), `the workload raised ${code}`);
      }
      assert.ok(errors.includes('"error":"LibsqlBatchError"'));
      assert.equal(client.closed, true);
      assert.equal(plain.closed, true);
      // The replicated database ends where the plain one does.
      const seq = await pointerSequence(store, client.name);
      await copyFile(join(work, "plain.db"), join(work, "plain-copy.db"));
      const sql = "SELECT id, name, score, hex(data) FROM t ORDER BY id";
      const restored = await restoredRows(store, client.name, seq, work, sql);
      const copy = createClient({ url: `file:${join(work, "plain-copy.db")}` });
      try {
        assert.deepEqual(restored.rows, plainRows(await copy.execute(sql)));
      } finally {
        copy.close();
      }
    } finally {
      await removeDir(work);
    }
  });

  for (const mode of ["wal", "delete"] as const) {
    it(`publishes committed writes of a ${mode} database; flush() waits until the store has them`, async () => {
      const work = await makeTempDir(`client-${mode}`);
      try {
        const store = new LocalStore(join(work, "store"));
        const client = await open(work, store);
        try {
          await client.execute(`PRAGMA journal_mode = ${mode}`);
          await client.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT)");
          for (let i = 0; i < 20; i++) {
            await client.execute({ sql: "INSERT INTO items (body) VALUES (?)", args: ["x".repeat(500 + i)] });
          }
          await client.batch([
            "DELETE FROM items WHERE id % 5 = 0",
            "UPDATE items SET body = 'changed' WHERE id = 1",
          ]);
          const tx = await client.transaction("write");
          await tx.execute("INSERT INTO items (body) VALUES ('from a transaction')");
          await tx.commit();
          const flushed = await client.flush();
          assert.equal(flushed.pending, 0);
          const seq = await pointerSequence(store, client.name);
          assert.equal(flushed.sequence, seq, "flush() reports the published sequence");
          assert.equal(client.status().lastSync?.sequence, seq);
          const sql = "SELECT id, body FROM items ORDER BY id";
          const restored = await restoredRows(store, client.name, seq, work, sql);
          assert.equal(restored.integrity, "ok");
          assert.deepEqual(restored.rows, plainRows(await client.execute(sql)));
          assert.equal(restored.rows.length, 17);
        } finally {
          await client.closeAsync();
        }
      } finally {
        await removeDir(work);
      }
    });
  }

  it("does not capture after reads or rollbacks; a commit captures, a new snapshot only if it wrote", async () => {
    const work = await makeTempDir("client-reads");
    try {
      const store = new LocalStore(join(work, "store"));
      // No quiet time: a capture the client scheduled would start on the next turn.
      const client = await open(work, store, { debounceMs: 0 });
      try {
        await client.execute("CREATE TABLE t (x)");
        await client.execute("INSERT INTO t VALUES (1)");
        await client.flush();
        const before = client.status();
        const sequence = await pointerSequence(store, client.name);
        // The client captures through its replicator's captureNow(); count those.
        let captures = 0;
        const captureNow = client.replicator.captureNow.bind(client.replicator);
        client.replicator.captureNow = () => {
          captures++;
          return captureNow();
        };
        const read = await client.transaction("read");
        assert.deepEqual((await read.execute("SELECT x FROM t")).rows.map((r) => r[0]), [1]);
        read.close();
        const undone = await client.transaction("write");
        await undone.execute("INSERT INTO t VALUES (2)");
        await undone.rollback();
        const dropped = await client.transaction("deferred");
        await dropped.execute("INSERT INTO t VALUES (3)");
        dropped.close();
        await client.execute("SELECT count(*) FROM t");
        await client.execute({ sql: "/* a comment */ select ?", args: [1] });
        await client.batch(["SELECT 1", "SELECT 2"], "read");
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.equal(captures, 0, "nothing that cannot commit starts a capture");
        // A committed "read" transaction may have written (libsql does not enforce it locally): it is
        // captured, but an unchanged database makes no snapshot.
        const committedRead = await client.transaction("read");
        await committedRead.execute("SELECT x FROM t");
        await committedRead.commit();
        await waitUntil(() => captures === 1, 20_000, "the capture after a commit");
        assert.equal((await client.flush()).pending, 0);
        assert.equal(client.status().captures, before.captures, "no new snapshot");
        assert.equal(await pointerSequence(store, client.name), sequence);
        captures = 0;
        const write = await client.transaction("write");
        await write.execute("INSERT INTO t VALUES (4)");
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.equal(captures, 0, "not before the commit");
        await write.commit();
        await waitUntil(() => captures === 1, 20_000, "the capture after a commit");
        assert.equal((await client.flush()).pending, 0);
        assert.equal(client.status().captures, before.captures + 1);
        assert.equal(await pointerSequence(store, client.name), sequence + 1);
        const restored = await restoredRows(store, client.name, sequence + 1, work, "SELECT x FROM t");
        assert.deepEqual(restored.rows.map((r) => (r as { values: unknown[] }).values[0]), [1, 4]);
      } finally {
        await client.closeAsync();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("never lets its own captures make a write fail in a rollback-journal database", async () => {
    const work = await makeTempDir("client-collide");
    try {
      const store = new LocalStore(join(work, "store"));
      // Capture after every write, so captures and writes keep meeting.
      const client = await open(work, store, { debounceMs: 0, maxDelayMs: 0 });
      try {
        await client.execute("PRAGMA journal_mode = delete");
        await client.execute("CREATE TABLE t (n INTEGER, pad TEXT)");
        const writes: Promise<unknown>[] = [];
        for (let n = 1; n <= 150; n++) {
          const args = [n, "p".repeat(2000)];
          writes.push(client.execute({ sql: "INSERT INTO t VALUES (?, ?)", args }));
          if (n % 10 === 0) {
            const tx = await client.transaction("write");
            await tx.execute({ sql: "UPDATE t SET pad = ? WHERE n = ?", args: ["tx", n] });
            await new Promise((resolve) => setTimeout(resolve, 1));
            await tx.commit();
          } else await new Promise((resolve) => setTimeout(resolve, 1));
        }
        await Promise.all(writes);
        assert.ok(client.status().captures > 2, "captures ran between the writes");
        const flushed = await client.flush();
        assert.equal(flushed.pending, 0);
        const sql = "SELECT count(*), sum(n), sum(pad = 'tx') FROM t";
        const restored = await restoredRows(store, client.name, flushed.sequence ?? 0, work, sql);
        assert.deepEqual((restored.rows[0] as { values: unknown[] }).values, [150, 11325, 15]);
      } finally {
        await client.closeAsync();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("debounces: many quick autocommit writes become one snapshot holding all of them", async () => {
    const work = await makeTempDir("client-debounce");
    try {
      const store = new LocalStore(join(work, "store"));
      // The quiet time is longer than the writes take, so only flush() captures.
      const client = await open(work, store, {
        debounceMs: 600_000,
        maxDelayMs: 600_000,
      });
      try {
        await client.execute("CREATE TABLE t (n INTEGER)");
        await client.flush();
        const before = client.status().captures;
        const sequence = await pointerSequence(store, client.name);
        for (let n = 1; n <= 50; n++) await client.execute({ sql: "INSERT INTO t VALUES (?)", args: [n] });
        assert.equal((await client.flush()).pending, 0);
        const captures = client.status().captures - before;
        assert.ok(captures < 50, `${captures} snapshots for 50 commits`);
        assert.equal(captures, 1);
        assert.equal(await pointerSequence(store, client.name), sequence + 1);
        const restored = await restoredRows(
          store,
          client.name,
          sequence + 1,
          work,
          "SELECT count(*), sum(n) FROM t",
        );
        assert.deepEqual((restored.rows[0] as { values: unknown[] }).values, [50, 1275]);
      } finally {
        await client.closeAsync();
      }
    } finally {
      await removeDir(work);
    }
  });

  for (const mode of ["close", "flush-exit", "close-async-exit"]) {
    it(`publishes a short-lived program's last write when it ends with ${mode}`, async () => {
      const work = await makeTempDir(`client-${mode}`);
      try {
        const db = join(work, "app.db");
        const storeDir = join(work, "store");
        const result = await runScript("test/replicate/_client_main.ts", [
          db,
          storeDir,
          join(work, "spool"),
          mode,
          "25",
        ]);
        assert.equal(result.code, 0, result.stderr);
        const name = /^name (.+)$/m.exec(result.stdout)?.[1];
        assert.ok(name, result.stdout);
        if (mode === "close") assert.match(result.stdout, /^closed true$/m);
        else assert.match(result.stdout, /^flushed \{"pending":0,"sequence":\d+\}$/m);
        const store = new LocalStore(storeDir);
        const seq = await pointerSequence(store, name);
        assert.ok(seq >= 1, "a snapshot was published");
        const restored = await restoredRows(
          store,
          name,
          seq,
          work,
          "SELECT count(*), max(id), (SELECT note FROM rows ORDER BY id DESC LIMIT 1) FROM rows",
        );
        assert.equal(restored.integrity, "ok");
        assert.deepEqual((restored.rows[0] as { values: unknown[] }).values, [25, 25, "row 25"]);
      } finally {
        await removeDir(work);
      }
    });
  }

  it("reports pending snapshots while the store is down, and publishes them once it returns", async () => {
    const work = await makeTempDir("client-outage");
    try {
      const store = new OutageStore(new LocalStore(join(work, "store")));
      const client = await open(work, store, { retryBaseMs: 20, retryMaxMs: 100 });
      try {
        await client.execute("CREATE TABLE t (n INTEGER)");
        assert.equal((await client.flush()).pending, 0);
        const sequence = await pointerSequence(store, client.name);
        store.down = true;
        for (let n = 1; n <= 3; n++) {
          await client.execute({ sql: "INSERT INTO t VALUES (?)", args: [n] });
          await client.flush({ timeoutMs: 50 });
        }
        const during = await client.flush({ timeoutMs: 100 });
        assert.ok(during.pending > 0, `pending ${during.pending}`);
        assert.equal(during.sequence, sequence);
        const status = client.status();
        assert.equal(status.pending, during.pending);
        assert.match(status.targets[0]?.lastError ?? "", /outage/);
        store.down = false;
        const after = await client.flush();
        assert.equal(after.pending, 0);
        assert.ok((after.sequence ?? 0) > sequence);
        assert.equal(await pointerSequence(store, client.name), after.sequence);
        const restored = await restoredRows(store, client.name, after.sequence ?? 0, work, "SELECT n FROM t");
        assert.deepEqual(restored.rows.map((r) => (r as { values: unknown[] }).values[0]), [1, 2, 3]);
      } finally {
        await client.closeAsync();
      }
    } finally {
      await removeDir(work);
    }
  });

  it("takes its stores, spool directory and chunk size from a config", async () => {
    const work = await makeTempDir("client-config");
    try {
      const client = await createReplicatingClient({
        url: join(work, "app.db"),
        config: {
          targets: [{ directory: join(work, "store") }],
          spool_dir: join(work, "spool"),
          chunk_size: 4096,
        },
        hostname: "client-host",
      });
      await client.execute("CREATE TABLE t (n INTEGER)");
      await client.execute("INSERT INTO t VALUES (7)");
      const closed = await client.closeAsync();
      assert.equal(closed.pending, 0);
      const store = new LocalStore(join(work, "store"));
      assert.equal(await pointerSequence(store, client.name), closed.sequence);
      const { manifest } = await loadSequence(store, client.name, closed.sequence ?? 0);
      assert.equal(manifest.chunkSize, 4096);
      const restored = await restoredRows(store, client.name, closed.sequence ?? 0, work, "SELECT n FROM t");
      assert.deepEqual(restored.rows.map((r) => (r as { values: unknown[] }).values[0]), [7]);
      // After closing, flush() reports the close's result, and reconnecting is refused.
      assert.deepEqual(await client.flush(), closed);
      assert.throws(
        () => client.reconnect(),
        (e: unknown) => e instanceof TesseraError && e.code === "STALE",
      );
    } finally {
      await removeDir(work);
    }
  });

  it("rejects what it cannot replicate", async () => {
    const store = new LocalStore(join(dir, "store"));
    for (const url of [":memory:", "file::memory:", "libsql://example.turso.io", "http://localhost:8080"]) {
      await assert.rejects(
        createReplicatingClient({ url, store }),
        (e: unknown) => e instanceof TypeError && /give a file: URL or a path/.test(e.message),
        url,
      );
    }
    await assert.rejects(
      createReplicatingClient(
        { url: join(dir, "x.db"), store, encryptionKey: "k" } as ReplicatingClientOptions,
      ),
      /Cannot replicate an encrypted database/,
    );
    await assert.rejects(
      createReplicatingClient({ url: join(dir, "x.db"), config: { targets: [] } }),
      /give `store` \(a BlobStore\) or `config` with a writable target/,
    );
  });

  it("refuses a database another replicator holds", async () => {
    const work = await makeTempDir("client-lease");
    try {
      const store = new LocalStore(join(work, "store"));
      const first = await open(work, store, { name: "app" });
      try {
        await assert.rejects(
          createReplicatingClient({
            url: join(work, "app.db"),
            store,
            hostname: "other-host",
            name: "app",
            spoolDir: join(work, "spool-2"),
          }),
          (e: unknown) => e instanceof TesseraError && e.code === "LEASE_HELD",
        );
        await first.execute("CREATE TABLE t (n)");
      } finally {
        await first.closeAsync();
      }
    } finally {
      await removeDir(work);
    }
  });
});
