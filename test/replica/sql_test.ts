import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type Client, createClient } from "@libsql/client";
import { type InStatement, type IntMode, LibsqlError, type ResultSet } from "@libsql/core/api";
import sqlite3InitModule from "@sqlite.org/sqlite-wasm";
import fc from "fast-check";
import { makeRow, rowMaker } from "../../src/replica/_values.ts";
import { sqliteError, WasmConnection } from "../../src/replica/sql.ts";
import { assertSameResult, describeValue, INT_MODES, makeParityDatabase, PARITY_CASES } from "./_parity.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

const sqlite3 = await sqlite3InitModule();
const { capi, wasm } = sqlite3;

/** Opens `filename` with sqlite-wasm's default VFS and returns the raw `sqlite3*`. */
function openRaw(filename: string, flags = capi.SQLITE_OPEN_READWRITE | capi.SQLITE_OPEN_CREATE): number {
  const stack = wasm.pstack.pointer;
  try {
    const ppDb = wasm.pstack.allocPtr() as number;
    const rc = capi.sqlite3_open_v2(filename, ppDb, flags | capi.SQLITE_OPEN_URI, 0);
    const db = wasm.peekPtr(ppDb) as number;
    if (rc !== 0) {
      const error = sqliteError(sqlite3, db, rc);
      capi.sqlite3_close_v2(db);
      throw error;
    }
    return db;
  } finally {
    wasm.pstack.restore(stack);
  }
}

/** A connection to an empty, writable in-memory database. */
function openMemory(): WasmConnection {
  return new WasmConnection(sqlite3, openRaw(":memory:"));
}

/** A connection to a read-only in-memory copy of the database file `image`. */
function openImage(image: Uint8Array): WasmConnection {
  const db = openRaw(":memory:");
  const data = wasm.alloc(image.length) as number;
  wasm.heap8u().set(image, data);
  const flags = capi.SQLITE_DESERIALIZE_FREEONCLOSE | capi.SQLITE_DESERIALIZE_READONLY;
  const rc = capi.sqlite3_deserialize(db, "main", data, image.length, image.length, flags);
  if (rc !== 0) {
    capi.sqlite3_close_v2(db);
    throw sqliteError(sqlite3, db, rc);
  }
  return new WasmConnection(sqlite3, db);
}

/** Counts `sqlite3_prepare_v3` calls while `body` runs. */
function countPrepares(body: () => void): number {
  const original = capi.sqlite3_prepare_v3;
  let count = 0;
  capi.sqlite3_prepare_v3 = ((...args: Parameters<typeof original>) => {
    count++;
    return original(...args);
  }) as typeof original;
  try {
    body();
  } finally {
    capi.sqlite3_prepare_v3 = original;
  }
  return count;
}

/** The error `body` throws. */
function thrown(body: () => unknown): unknown {
  try {
    body();
  } catch (error) {
    return error;
  }
  assert.fail("expected an error");
}

describe("WasmConnection.execute() returns exactly what @libsql/client returns", () => {
  let dir: string;
  let connection: WasmConnection;
  const clients = new Map<IntMode, Client>();

  before(async () => {
    dir = await makeTempDir("sql-parity");
    const path = join(dir, "parity.db");
    for (const [intMode, client] of await makeParityDatabase(path)) clients.set(intMode, client);
    connection = openImage(await readFile(path));
  });

  after(async () => {
    connection?.close();
    for (const client of clients.values()) client.close();
    await removeDir(dir);
  });

  for (const { name, stmt, intModes, throws } of PARITY_CASES) {
    for (const intMode of intModes ?? INT_MODES) {
      it(`${name} (intMode "${intMode}")`, async () => {
        const expected = await assertSameResult(
          () => connection.execute(stmt, intMode),
          () => clients.get(intMode)!.execute(stmt),
          name,
        );
        const failure = expected.ok ? undefined : String(expected.error.code ?? expected.error.className);
        assert.equal(failure, throws, expected.ok ? "" : expected.error.message);
      });
    }
  }
});

/** What the write tests call on both engines. */
interface Target {
  execute(stmt: InStatement): unknown;
  executeMultiple(sql: string): unknown;
}

/** A step that executes `text`. */
function sql(text: string): (db: Target) => unknown {
  return (db) => db.execute(text);
}

describe("WasmConnection on a writable database", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("sql-writes");
  });
  after(async () => {
    await removeDir(dir);
  });

  /** Runs `steps` in order on a fresh libsql file and a fresh wasm database, comparing every outcome. */
  async function compareSteps(name: string, steps: ((db: Target) => unknown)[]): Promise<void> {
    const client = createClient({ url: `file:${join(dir, `${name}.db`)}`, intMode: "bigint" });
    const wasmDb = openMemory();
    const wasmTarget = {
      execute: (stmt: InStatement) => wasmDb.execute(stmt, "bigint"),
      executeMultiple: (sql: string) => wasmDb.executeMultiple(sql),
    };
    try {
      for (const [i, step] of steps.entries()) {
        await assertSameResult(
          () => step(wasmTarget) as ResultSet | Promise<ResultSet>,
          () => step(client) as ResultSet | Promise<ResultSet>,
          `${name} step ${i}`,
        );
      }
    } finally {
      client.close();
      wasmDb.close();
    }
  }

  it("execute() counts changed rows and the last rowid as libsql does", async () => {
    await compareSteps("changes", [
      sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"),
      sql("INSERT INTO t (v) VALUES ('a'), ('b'), ('c')"),
      // SQLite keeps the previous statement's count through DDL; libsql reports 0.
      sql("CREATE INDEX t_v ON t (v)"),
      sql("SELECT count(*) FROM t"),
      sql("UPDATE t SET v = v || '!' WHERE id >= 2"),
      sql("DELETE FROM t WHERE 0"),
      // libsql passes the rowid through a double.
      sql("INSERT INTO t (id, v) VALUES (9007199254740993, 'big')"),
      sql("INSERT INTO t (v) VALUES ('returned') RETURNING id, v"),
      sql("CREATE TABLE log (v TEXT)"),
      sql("CREATE TRIGGER t_log AFTER DELETE ON t BEGIN INSERT INTO log VALUES (old.v); END"),
      sql("DELETE FROM t WHERE id <= 2"),
      sql("SELECT * FROM log"),
      (db) => db.execute({ sql: "INSERT INTO t (v) VALUES (:one), ($two)", args: { one: "x", two: "y" } }),
      sql("PRAGMA user_version = 7"),
      sql("PRAGMA user_version"),
    ]);
  });

  it("execute() throws the same constraint errors as libsql", async () => {
    await compareSteps("constraints", [
      sql("CREATE TABLE k (id INTEGER PRIMARY KEY, u TEXT UNIQUE, n TEXT NOT NULL, c INT CHECK (c > 0))"),
      sql("CREATE TABLE s (x INT) STRICT"),
      sql("INSERT INTO k VALUES (1, 'u', 'n', 1)"),
      sql("INSERT INTO k VALUES (1, 'v', 'n', 1)"),
      sql("INSERT INTO k VALUES (2, 'u', 'n', 1)"),
      sql("INSERT INTO k VALUES (3, 'w', NULL, 1)"),
      sql("INSERT INTO k VALUES (4, 'x', 'n', 0)"),
      sql("INSERT INTO s VALUES ('text')"),
      sql("SELECT * FROM k"),
    ]);
  });

  it("executeMultiple() runs statements in order and stops at the first error, as libsql does", async () => {
    const script = (text: string) => async (db: Target) => {
      await db.executeMultiple(text);
      return await db.execute("SELECT * FROM a ORDER BY x");
    };
    await compareSteps("multiple", [
      script(
        "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1); SELECT * FROM a; INSERT INTO a VALUES (2);",
      ),
      script(""),
      script("-- only a comment"),
      script("INSERT INTO a VALUES (3); SELEC; INSERT INTO a VALUES (4)"),
      script("INSERT INTO a VALUES ('five'); INSERT INTO nope VALUES (1)"),
      script("CREATE TABLE u (x PRIMARY KEY); INSERT INTO u VALUES (1); INSERT INTO u VALUES (1)"),
    ]);
  });

  it("inTransaction follows BEGIN, COMMIT and ROLLBACK", () => {
    const db = openMemory();
    try {
      assert.equal(db.inTransaction, false);
      db.executeMultiple("BEGIN; CREATE TABLE t (x)");
      assert.equal(db.inTransaction, true);
      db.execute("COMMIT", "number");
      assert.equal(db.inTransaction, false);
      db.execute("BEGIN IMMEDIATE", "number");
      db.execute("INSERT INTO t VALUES (1)", "number");
      assert.equal(db.inTransaction, true);
      db.executeMultiple("ROLLBACK");
      assert.equal(db.inTransaction, false);
      assert.equal(db.execute("SELECT count(*) AS n FROM t", "number").rows[0]?.n, 0);
    } finally {
      db.close();
    }
  });
});

describe("WasmConnection's statement cache", () => {
  it("prepares a statement once and reuses it with different arguments", () => {
    const db = openMemory();
    try {
      db.executeMultiple(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); " +
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) " +
          "INSERT INTO t SELECT i, 'v' || i FROM n",
      );
      const prepares = countPrepares(() => {
        for (let id = 1; id <= 100; id++) {
          const { rows } = db.execute({ sql: "SELECT v FROM t WHERE id = ?", args: [id] }, "number");
          assert.equal(rows[0]?.v, `v${id}`);
        }
      });
      assert.equal(prepares, 1);
    } finally {
      db.close();
    }
  });

  it("keeps 64 statements and re-prepares the least recently used one", () => {
    const db = openMemory();
    try {
      const sql = (i: number) => `SELECT ${i} AS n`;
      assert.equal(
        countPrepares(() => Array.from({ length: 65 }, (_, i) => db.execute(sql(i), "number"))),
        65,
      );
      assert.equal(countPrepares(() => db.execute(sql(64), "number")), 0);
      assert.equal(countPrepares(() => db.execute(sql(0), "number")), 1, "the oldest was evicted");
      assert.equal(countPrepares(() => db.execute(sql(2), "number")), 0);
      assert.equal(countPrepares(() => db.execute(sql(1), "number")), 1, "re-preparing 0 evicted 1");
    } finally {
      db.close();
    }
  });

  it("an error in one call does not leak into the next", () => {
    const db = openMemory();
    try {
      const stepError = "SELECT CASE WHEN ? THEN json('not json') ELSE 'fine' END AS v";
      const error = thrown(() => db.execute({ sql: stepError, args: [1] }, "number"));
      assert.ok(error instanceof LibsqlError);
      assert.equal(error.message, "SQLITE_ERROR: malformed JSON");
      assert.equal(db.execute({ sql: stepError, args: [0] }, "number").rows[0]?.v, "fine");

      const echo = "SELECT ? AS a, ? AS b";
      assert.throws(() => db.execute({ sql: echo, args: [2n ** 60n, 1] }, "number"), RangeError);
      assert.throws(() => db.execute({ sql: echo, args: [1, {} as never] }, "number"), {
        name: "Error",
        message: "SQLite3 can only bind numbers, strings, bigints, buffers, and null",
      });
      const { rows } = db.execute({ sql: echo, args: ["only a"] }, "number");
      assert.deepEqual([rows[0]?.a, rows[0]?.b], ["only a", null], "bindings from earlier calls are cleared");
    } finally {
      db.close();
    }
  });

  it("reads a statement's new columns after the schema changes", () => {
    const db = openMemory();
    try {
      db.executeMultiple("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1)");
      const before = db.execute("SELECT * FROM t", "number");
      assert.deepEqual([before.columns, before.columnTypes], [["a"], ["INTEGER"]]);
      db.executeMultiple("ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x'");
      const after = db.execute("SELECT * FROM t", "number");
      assert.deepEqual([after.columns, after.columnTypes], [["a", "b"], ["INTEGER", "TEXT"]]);
      assert.equal(after.rows[0]?.b, "x");
    } finally {
      db.close();
    }
  });
});

describe("WasmConnection.close()", () => {
  it("finalizes cached statements so the database really closes", () => {
    const name = `file:/close-${Date.now()}?vfs=memdb`;
    const db = new WasmConnection(sqlite3, openRaw(name));
    db.executeMultiple("CREATE TABLE t (x); INSERT INTO t VALUES (1)");
    db.execute("SELECT * FROM t", "number");
    db.close();
    // A memdb database lives while a connection holds it; an unfinalized statement would keep it alive.
    const reopened = new WasmConnection(sqlite3, openRaw(name));
    try {
      assert.equal(reopened.execute("SELECT count(*) AS n FROM sqlite_schema", "number").rows[0]?.n, 0);
    } finally {
      reopened.close();
    }
  });

  it("makes later calls throw CLIENT_CLOSED and is idempotent", () => {
    const db = openMemory();
    db.execute("SELECT 1", "number");
    db.close();
    db.close();
    assert.equal(db.inTransaction, false);
    for (const call of [() => db.execute("SELECT 1", "number"), () => db.executeMultiple("SELECT 1")]) {
      assert.throws(call, (error) => error instanceof LibsqlError && error.code === "CLIENT_CLOSED");
    }
  });
});

describe("sqliteError()", () => {
  it("names codes as libsql does, with SQLite's message", () => {
    const cases: [number, string, string, string][] = [
      [8, "SQLITE_READONLY", "SQLITE_READONLY", "attempt to write a readonly database"],
      [1555, "SQLITE_CONSTRAINT", "SQLITE_CONSTRAINT_PRIMARYKEY", "constraint failed"],
      [3091, "SQLITE_CONSTRAINT", "UNKNOWN_SQLITE_ERROR_3091", "constraint failed"],
      [0, "SQLITE_UNKNOWN_0", "SQLITE_OK", "not an error"],
      [266, "SQLITE_IOERR", "SQLITE_IOERR_READ", "disk I/O error"],
      [517, "SQLITE_BUSY", "SQLITE_BUSY_SNAPSHOT", "database is locked"],
      [1032, "SQLITE_READONLY", "SQLITE_READONLY_DBMOVED", "attempt to write a readonly database"],
      [2579, "SQLITE_CONSTRAINT", "SQLITE_CONSTRAINT_ROWID", "constraint failed"],
      [256, "SQLITE_UNKNOWN_0", "SQLITE_OK_LOAD_PERMANENTLY", "not an error"],
      // Codes newer than libsql's list keep their number only.
      [779, "SQLITE_CORRUPT", "UNKNOWN_SQLITE_ERROR_779", "database disk image is malformed"],
      [1544, "SQLITE_READONLY", "UNKNOWN_SQLITE_ERROR_1544", "attempt to write a readonly database"],
      [101, "SQLITE_UNKNOWN_101", "SQLITE_DONE", "no more rows available"],
    ];
    for (const [rc, code, extendedCode, message] of cases) {
      const error = sqliteError(sqlite3, 0, rc);
      assert.ok(error instanceof LibsqlError);
      assert.deepEqual(
        [error.message, error.code, error.extendedCode, error.rawCode],
        [`${code}: ${message}`, code, extendedCode, rc],
      );
    }
  });

  it("takes the extended code and message from the connection when they describe rc", () => {
    const db = openRaw(":memory:");
    const connection = new WasmConnection(sqlite3, db);
    try {
      connection.executeMultiple("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)");
      assert.throws(() => connection.execute("INSERT INTO t VALUES (1)", "number"));
      const error = sqliteError(sqlite3, db, 19);
      assert.deepEqual(
        [error.message, error.code, error.extendedCode, error.rawCode],
        [
          "SQLITE_CONSTRAINT: UNIQUE constraint failed: t.id",
          "SQLITE_CONSTRAINT",
          "SQLITE_CONSTRAINT_PRIMARYKEY",
          1555,
        ],
      );
      const cause = error.cause as Error & { code: string; rawCode: number };
      assert.deepEqual([cause.name, cause.message, cause.code, cause.rawCode], [
        "SqliteError",
        "UNIQUE constraint failed: t.id",
        "SQLITE_CONSTRAINT_PRIMARYKEY",
        1555,
      ]);
      const other = sqliteError(sqlite3, db, 8);
      assert.equal(other.message, "SQLITE_READONLY: attempt to write a readonly database");
    } finally {
      connection.close();
    }
  });
});

describe("WasmConnection arguments", () => {
  it("rejects named arguments for a nameless ? (libsql aborts the process)", () => {
    const db = openMemory();
    try {
      assert.throws(() => db.execute({ sql: "SELECT ?", args: { a: 1 } }, "number"), {
        name: "TypeError",
        message: /parameter 1 has no name/,
      });
      assert.equal(db.execute({ sql: "SELECT ?", args: [5] }, "number").rows[0]?.[0], 5);
    } finally {
      db.close();
    }
  });

  it("binds strings of every size and blobs larger than the scratch buffer", () => {
    const db = openMemory();
    try {
      for (const size of [0, 1, 63, 64, 65, 255, 256, 4097, 300_000]) {
        const text = "é😀x".repeat(size);
        const blob = new Uint8Array(size * 3).map((_, i) => i * 31);
        const { rows } = db.execute({ sql: "SELECT ?, ?, length(?1)", args: [text, blob] }, "number");
        assert.equal(rows[0]?.[0], text);
        assert.deepEqual(new Uint8Array(rows[0]?.[1] as ArrayBuffer), blob);
        assert.equal(rows[0]?.[2], size * 3);
      }
    } finally {
      db.close();
    }
  });
});

describe("the parity comparator", () => {
  it("describeValue() tells apart values that loose comparisons confuse", () => {
    const pairs: [unknown, unknown][] = [
      [-0, 0],
      [1, 1n],
      [1n, "1"],
      [new Uint8Array([1]).buffer, new Uint8Array([2]).buffer],
      [new ArrayBuffer(0), ""],
      [null, "null"],
    ];
    for (const [a, b] of pairs) assert.notDeepStrictEqual(describeValue(a), describeValue(b));
  });
});

describe("rows", () => {
  it("rowMaker() builds exactly the rows makeRow() builds, for any column names", () => {
    const special = [
      "a",
      "b",
      "length",
      "0",
      "1",
      "2",
      "7",
      "__proto__",
      "constructor",
      "",
      "01",
      "4294967295",
    ];
    const name = fc.oneof(fc.constantFrom(...special), fc.string({ maxLength: 2 }));
    fc.assert(
      fc.property(fc.array(name, { maxLength: 6 }), (columns) => {
        const values = columns.map((_, i) => i * 10);
        const fast = rowMaker(columns)(values);
        const exact = makeRow(values, columns);
        assert.deepStrictEqual(Reflect.ownKeys(fast), Reflect.ownKeys(exact));
        assert.deepStrictEqual(
          Object.getOwnPropertyDescriptors(fast),
          Object.getOwnPropertyDescriptors(exact),
        );
        assert.equal(Object.getPrototypeOf(fast), Object.prototype);
      }),
      { numRuns: 1000 },
    );
  });
});
