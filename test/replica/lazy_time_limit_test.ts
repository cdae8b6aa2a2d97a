/**
 * A lazy replica with a time limit: a statement that first misses chunks, then runs past its slice of the
 * engine's thread, goes on in the worker once its chunks are fetched, and returns its rows.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openReplica } from "../../src/replica/open.ts";
import type { Replica } from "../../src/replica/replica.ts";
import { LocalStore } from "../../src/store/local.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { sqliteCli } from "../_helpers/run.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

/** Reads one row of `t` (a chunk a cold replica lacks), then counts for far longer than a slice. */
const SLOW_AFTER_MISS = (id: number) =>
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) " +
  `SELECT count(*) FROM c WHERE x > (SELECT length(name) * 100 FROM t WHERE id = ${id})`;

describe("a lazy replica with a time limit", () => {
  let dir: string;
  let source: string;
  let store: LocalStore;
  const opened: Replica[] = [];
  const cold = async () => {
    const replica = await openReplica("slow", {
      store,
      load: "lazy",
      pollIntervalMs: 0,
      memoryCacheBytes: 1 << 20,
      queryTimeoutMs: 60_000,
    });
    opened.push(replica);
    return replica;
  };

  before(async () => {
    dir = await makeTempDir("lazy-time-limit");
    source = join(dir, "slow.db");
    store = new LocalStore(join(dir, "store"));
    // About 5 MB: names of 1 to 20 characters, so each lookup gives its own count.
    await sqliteCli(
      source,
      `CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, pad BLOB);
       WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100000)
       INSERT INTO t SELECT i, substr('abcdefghijklmnopqrst', 1, 1 + i % 20), randomblob(30) FROM s;`,
    );
    await syncDatabase(source, {
      stores: [store],
      hostname: "h",
      name: "slow",
      spoolDir: join(dir, "spool"),
      chunkSize: 4096,
    });
  });
  after(async () => {
    for (const replica of opened.splice(0)) replica.close();
    await removeDir(dir);
  });

  it("returns the rows of a statement that missed chunks, then ran past its slice", async () => {
    const replica = await cold();
    for (const id of [77_777, 50_003, 99_998]) {
      const misses = replica.status().memory.chunkMisses!;
      const { rows } = await replica.execute(SLOW_AFTER_MISS(id));
      assert.equal(
        String(rows[0]![0]),
        await sqliteCli(source, SLOW_AFTER_MISS(id)),
        `the count for row ${id}`,
      );
      assert.ok(replica.status().memory.chunkMisses! > misses, `the statement for row ${id} missed chunks`);
    }
    assert.equal(replica.status().memory.offloaded, 3, "each went on in the worker");
  });

  it("does so inside a transaction, which stays open on its snapshot", async () => {
    const replica = await cold();
    const tx = await replica.transaction("read");
    try {
      const { rows } = await tx.execute(SLOW_AFTER_MISS(12_345));
      assert.equal(String(rows[0]![0]), await sqliteCli(source, SLOW_AFTER_MISS(12_345)));
      assert.equal(tx.closed, false);
      const name = await tx.execute("SELECT name FROM t WHERE id = 12345");
      assert.equal(name.rows[0]![0], await sqliteCli(source, "SELECT name FROM t WHERE id = 12345"));
    } finally {
      await tx.commit();
    }
    assert.equal(replica.status().memory.pinnedBytes, 0, "nothing stays pinned");
  });
});
