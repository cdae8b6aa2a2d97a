/**
 * A lazy replica's statements run again after fetching what they missed; a transaction must still read one
 * snapshot from start to end, whatever was served meanwhile.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openReplica } from "../../src/replica/open.ts";
import type { Replica } from "../../src/replica/replica.ts";
import { LocalStore } from "../../src/store/local.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { runScript, sqliteCli } from "../_helpers/run.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

for (const offload of [true, false]) {
  describe(`a lazy replica's transactions (${offload ? "long statements in the worker" : "no worker"})`, () => {
    let dir: string;
    let source: string;
    let store: LocalStore;
    let replica: Replica;
    const sync = () =>
      syncDatabase(source, {
        stores: [store],
        hostname: "h",
        name: "tx",
        spoolDir: join(dir, "spool"),
        chunkSize: 4096,
      });

    before(async () => {
      dir = await makeTempDir("lazy-snapshot");
      source = join(dir, "tx.db");
      store = new LocalStore(join(dir, "store"));
      await sqliteCli(
        source,
        `CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, v BLOB);
       WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 3000)
       INSERT INTO t SELECT i, i, randomblob(500) FROM s;`,
      );
      await sync();
      replica = await openReplica("tx", { store, load: "lazy", pollIntervalMs: 0, offload });
    });
    after(async () => {
      replica?.close();
      await removeDir(dir);
    });

    it("read one snapshot across the chunks they fetch, while a newer one is served", async () => {
      const oldSum = Number(await sqliteCli(source, "SELECT sum(n) FROM t"));
      const tx = await replica.transaction("read");
      try {
        assert.equal(Number((await tx.execute("SELECT n FROM t WHERE id = 1")).rows[0]![0]), 1);
        await sqliteCli(source, "UPDATE t SET n = n + 1000000, v = randomblob(500)");
        await sync();
        await replica.refresh(1);
        const newSum = Number(await sqliteCli(source, "SELECT sum(n) FROM t"));
        assert.notEqual(newSum, oldSum);
        const loaded = replica.status().memory.chunksLoaded!;
        // Nearly every page of the old snapshot is still to be fetched: the sum misses chunk after chunk, and
        // each run starts the transaction again on the snapshot it began with.
        const inside = Number((await tx.execute("SELECT sum(n) FROM t")).rows[0]![0]);
        assert.ok(replica.status().memory.chunksLoaded! - loaded > 100, "the transaction fetched old chunks");
        assert.equal(inside, oldSum, "the transaction read the snapshot it began on");
        assert.equal(replica.status().memory.offloaded, offload ? 1 : 0);
        assert.equal(Number((await replica.execute("SELECT sum(n) FROM t")).rows[0]![0]), newSum);
        assert.equal(Number((await tx.execute("SELECT n FROM t WHERE id = 3000")).rows[0]![0]), 3000);
      } finally {
        await tx.commit();
      }
      assert.equal(
        replica.status().memory.snapshots,
        1,
        "the old snapshot is let go when the transaction ends",
      );
    });

    it("batches read one snapshot too", async () => {
      const results = await replica.batch(["SELECT count(*) FROM t", "SELECT min(n), max(n) FROM t"], "read");
      assert.equal(Number(results[0]!.rows[0]![0]), 3000);
      assert.deepEqual(Array.from(results[1]!.rows[0]!, Number), [1000001, 1003000]);
    });

    it("statements sent at once on one transaction run one at a time, each whole", async () => {
      // A cold replica with little memory: every statement waits for chunks, some in the worker.
      const cold = await openReplica("tx", {
        store,
        load: "lazy",
        pollIntervalMs: 0,
        offload,
        memoryCacheBytes: 1 << 19,
      });
      try {
        const tx = await cold.transaction("read");
        const sums = await Promise.all(
          Array.from({ length: 8 }, (_, i) => tx.execute(`SELECT sum(n) FROM t WHERE id > ${i * 300}`)),
        );
        for (const [i, result] of sums.entries()) {
          const expected = Number(await sqliteCli(source, `SELECT sum(n) FROM t WHERE id > ${i * 300}`));
          assert.equal(Number(result.rows[0]![0]), expected);
        }
        assert.equal(tx.closed, false);
        await tx.commit();
        const memory = cold.status().memory;
        assert.equal(memory.pinnedBytes, 0, "nothing stays pinned");
        assert.equal(memory.snapshots, 1);
      } finally {
        cold.close();
      }
    });
  });
}

describe("a lazy replica's background hydration", () => {
  let dir: string;
  let source: string;
  let store: LocalStore;
  before(async () => {
    dir = await makeTempDir("lazy-hydrate");
    source = join(dir, "h.db");
    store = new LocalStore(join(dir, "store"));
    await sqliteCli(
      source,
      `CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);
       WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 2000)
       INSERT INTO t SELECT i, randomblob(1000) FROM s;`,
    );
    await syncDatabase(source, {
      stores: [store],
      hostname: "h",
      name: "h",
      spoolDir: join(dir, "spool"),
      chunkSize: 4096,
    });
  });
  after(() => removeDir(dir));

  const settle = async (replica: Replica) => {
    // Hydration runs in the background: wait until its fetches stop.
    let last = -1;
    for (let i = 0; i < 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const now = replica.status().memory.chunksLoaded!;
      if (now === last) return now;
      last = now;
    }
    return last;
  };

  it("fetches the whole snapshot when it fits, so queries then fetch nothing", async () => {
    const replica = await openReplica("h", { store, load: "lazy", hydrate: true, pollIntervalMs: 0 });
    try {
      const pages = Number(await sqliteCli(source, "PRAGMA page_count"));
      await settle(replica);
      const memory = replica.status().memory;
      assert.equal(memory.chunks, pages - 1, "every chunk but the manifest's own chunk 0 is held");
      const loads = memory.loads;
      assert.equal(Number((await replica.execute("SELECT count(*) FROM t")).rows[0]![0]), 2000);
      assert.equal(replica.status().memory.loads, loads, "the scan fetched nothing");
    } finally {
      replica.close();
    }
  });

  it("a process that never closes its replica still exits once the worker is idle", async () => {
    // A liveness guard, not a speed limit: a worker that kept the process alive would hang it for good.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("the process did not exit within 60 s")), 60_000);
    });
    const result = await Promise.race([
      runScript("test/replica/_lazy_exit_main.ts", [join(dir, "store"), "h"]),
      hung,
    ]).finally(() => clearTimeout(timer));
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), { count: 2000, offloaded: 1 });
  });

  it("stops at the memory cap, and at close", async () => {
    const cap = 256 * 1024;
    const replica = await openReplica("h", {
      store,
      load: "lazy",
      hydrate: true,
      pollIntervalMs: 0,
      memoryCacheBytes: cap,
    });
    await settle(replica);
    const memory = replica.status().memory;
    assert.ok(memory.chunkBytes <= cap, `${memory.chunkBytes} bytes held under a ${cap}-byte cap`);
    assert.ok(memory.chunkBytes >= cap / 2, `${memory.chunkBytes} bytes held: hydration filled the cap`);
    replica.close();
    const closed = replica.status().memory.chunksLoaded;
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(replica.status().memory.chunksLoaded, closed, "nothing is fetched after close");
  });
});
