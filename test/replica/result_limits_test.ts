/**
 * A restricted replica bounds every statement's result: the wasm engine stops while SQLite steps through it
 * (on this thread, in the offload worker, and on a lazily loaded snapshot), the native engine after.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LibsqlBatchError, LibsqlError } from "@libsql/core/api";
import { openReplica, type OpenReplicaOptions } from "../../src/replica/open.ts";
import type { Replica } from "../../src/replica/replica.ts";
import { loadSqlite3 } from "../../src/replica/wasm.ts";
import { LocalStore } from "../../src/store/local.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { sqliteCli } from "../_helpers/run.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

const NAME = "limits";
const LIMITS = { maxRows: 100, maxBytes: 100_000 };

const tooLarge = (what: "rows" | "bytes") => (e: unknown) =>
  e instanceof LibsqlError && e.code === "RESULT_TOO_LARGE" &&
  e.message.includes(what === "rows" ? " 100 rows" : " 100000 bytes");

/** Rows without end: only a bound stops them. */
const ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c";
/** Half a gigabyte of zeros that SQLite holds as a count until the value is read. */
const HUGE_BLOB = "SELECT zeroblob(500000000)";
/** A statement that sorts a million rows before its first: longer than a slice of the engine's thread. */
const SLOW_ROWS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) " +
  "SELECT x FROM c ORDER BY -x";

describe("a restricted replica's result limits", () => {
  let dir: string;
  let source: string;
  let store: LocalStore;
  const opened: Replica[] = [];
  const open = async (options: OpenReplicaOptions = {}) => {
    const replica = await openReplica(NAME, { store, pollIntervalMs: 0, ...options });
    opened.push(replica);
    return replica;
  };
  const restricted = async (options: OpenReplicaOptions = {}) => {
    const replica = await open(options);
    replica.restrict(LIMITS);
    return replica;
  };

  before(async () => {
    dir = await makeTempDir("result-limits");
    source = join(dir, "limits.db");
    store = new LocalStore(join(dir, "store"));
    // 1000 rows of about 3 KB: 100 of them fit the row bound, 30 the byte bound.
    await sqliteCli(
      source,
      `CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, v BLOB);
       WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1000)
       INSERT INTO t SELECT i, 'row ' || i, randomblob(3000) FROM s;`,
    );
    await syncDatabase(source, {
      stores: [store],
      hostname: "h",
      name: NAME,
      spoolDir: join(dir, "spool"),
      chunkSize: 4096,
    });
  });
  after(async () => {
    for (const replica of opened.splice(0)) replica.close();
    await removeDir(dir);
  });

  it("wasm: a statement past maxRows fails with RESULT_TOO_LARGE, one within it returns its rows", async () => {
    const replica = await restricted({ engine: "wasm" });
    await assert.rejects(replica.execute("SELECT id, name FROM t"), tooLarge("rows"));
    const hundred = await replica.execute("SELECT id, name FROM t WHERE id <= 100 ORDER BY id");
    assert.equal(hundred.rows.length, 100);
    assert.equal(hundred.rows[99]!.name, "row 100");
  });

  it("wasm: a statement past maxBytes fails with RESULT_TOO_LARGE, one within it returns its values", async () => {
    const replica = await restricted({ engine: "wasm" });
    // 31 blobs of 3000 bytes and 31 integers: 93,248 bytes; one row more passes 100,000.
    const within = await replica.execute("SELECT id, v FROM t WHERE id <= 31");
    assert.equal(within.rows.length, 31);
    assert.equal((within.rows[30]!.v as ArrayBuffer).byteLength, 3000);
    await assert.rejects(replica.execute("SELECT id, v FROM t WHERE id <= 40"), tooLarge("bytes"));
    // Text counts its UTF-8 bytes: 40,000 characters of three bytes each pass the bound.
    await assert.rejects(
      replica.execute("SELECT replace(hex(zeroblob(20000)), '0', '€')"),
      tooLarge("bytes"),
    );
    const text = await replica.execute("SELECT replace(hex(zeroblob(10000)), '0', '€') AS s");
    assert.equal(text.rows[0]!.s, "€".repeat(20000));
    // No value longer than the bound is built or bound either, even for a small result.
    const long = { sql: "SELECT length(?) AS n", args: ["x".repeat(200_000)] };
    await assert.rejects(replica.execute(long), tooLarge("bytes"));
    await assert.rejects(replica.execute("SELECT length(group_concat(v)) FROM t"), tooLarge("bytes"));
    const unrestricted = await open({ engine: "wasm" });
    assert.equal((await unrestricted.execute(long)).rows[0]!.n, 200_000);
  });

  it("wasm: a huge value and endless rows fail, and the replica answers afterwards", async () => {
    const replica = await restricted({ engine: "wasm" });
    // The engines of a process share one sqlite-wasm module, whose memory only grows.
    const { wasm } = await loadSqlite3();
    const heap = wasm.heap8u().length;
    await assert.rejects(replica.execute(HUGE_BLOB), tooLarge("bytes"));
    assert.ok(wasm.heap8u().length - heap < 100_000_000, "SQLite never built the 500 MB value");
    await assert.rejects(replica.execute(ENDLESS), tooLarge("rows"));
    const { rows } = await replica.execute("SELECT count(*) AS n, sum(length(v)) AS bytes FROM t");
    assert.deepEqual([rows[0]!.n, rows[0]!.bytes], [1000, 3_000_000]);
  });

  it("wasm: the bounds hold inside a transaction and a batch", async () => {
    const replica = await restricted({ engine: "wasm" });
    const tx = await replica.transaction("read");
    try {
      await assert.rejects(tx.execute("SELECT id FROM t"), tooLarge("rows"));
      await assert.rejects(tx.execute(HUGE_BLOB), tooLarge("bytes"));
      await assert.rejects(tx.execute(ENDLESS), tooLarge("rows"));
      assert.equal((await tx.execute("SELECT id FROM t LIMIT 100")).rows.length, 100);
      assert.equal(tx.closed, false);
    } finally {
      await tx.commit();
    }
    for (
      const [sql, what] of [["SELECT id FROM t", "rows"], [HUGE_BLOB, "bytes"], [ENDLESS, "rows"]] as const
    ) {
      await assert.rejects(
        replica.batch(["SELECT 1", sql], "read"),
        (e: unknown) => e instanceof LibsqlBatchError && e.statementIndex === 1 && tooLarge(what)(e),
      );
    }
    const [first, second] = await replica.batch(
      ["SELECT id FROM t LIMIT 100", "SELECT count(*) FROM t"],
      "read",
    );
    assert.equal(first!.rows.length, 100);
    assert.equal(second!.rows[0]![0], 1000);
  });

  it("refuses the pragmas that change the replica for every caller, and answers the others", async () => {
    const replica = await restricted({ engine: "wasm" });
    const refused = (e: unknown) => e instanceof LibsqlError && e.code === "SQLITE_AUTH";
    await assert.rejects(replica.execute("PRAGMA tessera_snapshot_auto_refresh = 0"), refused);
    await assert.rejects(replica.execute("PRAGMA tessera_snapshot_refresh"), refused);
    const { rows } = await replica.execute("PRAGMA tessera_snapshot_sequence");
    assert.equal(rows[0]![0], 1);
  });

  it("an unrestricted replica returns every row", async () => {
    const replica = await open({ engine: "wasm" });
    const { rows } = await replica.execute("SELECT id, v FROM t");
    assert.equal(rows.length, 1000);
    assert.equal(
      ((await replica.execute("SELECT zeroblob(200000) AS z")).rows[0]!.z as ArrayBuffer).byteLength,
      200000,
    );
  });

  it("wasm with a time limit: a statement moved to the worker is bounded there", async () => {
    const replica = await restricted({ engine: "wasm", queryTimeoutMs: 60_000 });
    await assert.rejects(replica.execute(SLOW_ROWS), tooLarge("rows"));
    await assert.rejects(
      replica.execute(`SELECT zeroblob(500000000) FROM (${SLOW_ROWS} LIMIT 1)`),
      tooLarge("bytes"),
    );
    // Both ran past their slice of this thread: the worker stopped them.
    assert.equal(replica.status().memory.offloaded, 2);
    await assert.rejects(replica.execute(ENDLESS), tooLarge("rows"));
    assert.equal((await replica.execute(`${SLOW_ROWS} LIMIT 100`)).rows[0]![0], 1000000);
  });

  it("wasm, loaded lazily: a statement fetching chunks is bounded too", async () => {
    const replica = await restricted({ engine: "wasm", load: "lazy", memoryCacheBytes: 1 << 20 });
    await assert.rejects(replica.execute("SELECT id, name FROM t"), tooLarge("rows"));
    await assert.rejects(replica.execute("SELECT v FROM t WHERE id > 500"), tooLarge("bytes"));
    const { rows } = await replica.execute("SELECT id, v FROM t WHERE id > 970");
    assert.equal(rows.length, 30);
    const expected = await sqliteCli(source, "SELECT hex(v) FROM t WHERE id = 1000");
    assert.equal(Buffer.from(rows[29]!.v as ArrayBuffer).toString("hex").toUpperCase(), expected);
    assert.ok(replica.status().memory.chunksLoaded! > 0, "the replica fetched chunks for its statements");
  });

  it("native: a statement past maxRows fails with RESULT_TOO_LARGE after it ran", async () => {
    const replica = await restricted({ engine: "native" });
    await assert.rejects(replica.execute("SELECT id, name FROM t"), tooLarge("rows"));
    assert.equal((await replica.execute("SELECT id FROM t WHERE id <= 100")).rows.length, 100);
  });
});
