/**
 * Transactions and statements over Hrana as a libSQL client's connection would run them: savepoints that
 * begin and end transactions, malformed transaction statements failing as SQLite fails them, `describe`
 * on the transaction's snapshot, batch conditions on steps that have not run, the replica's state pragmas
 * refused to callers, and the SQL a stream may keep stored.
 */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { type Json, pipeline, type Served, serveParity, TOKEN } from "./_fixture.ts";

const stmt = (sql: string, args: unknown[] = []) => ({ sql, args, named_args: [], want_rows: true });
const execute = (sql: string, args: unknown[] = []) => ({ type: "execute", stmt: stmt(sql, args) });
const autocommit = { type: "get_autocommit" };
const close = { type: "close" };

describe("Hrana transactions", () => {
  let s: Served;
  let url: string;

  before(async () => {
    s = await serveParity("transactions");
    url = `${s.server.url}/parity/v2/pipeline`;
  });
  after(async () => await s?.close());

  const isAutocommit = (result: Json) => result.response.is_autocommit;

  it("follows SAVEPOINT and RELEASE as SQLite does: the outermost savepoint begins and ends a transaction", async () => {
    const got = await pipeline(url, {
      requests: [
        execute("SAVEPOINT a"),
        autocommit,
        execute("SAVEPOINT b"),
        execute("RELEASE b"),
        autocommit,
        execute('release savepoint "A"'),
        autocommit,
        execute("BEGIN"),
        execute("COMMIT"),
        execute("SAVEPOINT a"),
        execute("ROLLBACK TO a"),
        autocommit,
        execute("RELEASE x"),
        autocommit,
        execute("ROLLBACK"),
        autocommit,
        execute("BEGIN"),
        execute("SAVEPOINT inner"),
        execute("RELEASE inner"),
        autocommit,
        execute("END TRANSACTION"),
        autocommit,
        close,
      ],
    });
    const r = got.body.results;
    assert.equal(got.status, 200);
    assert.deepEqual(
      [1, 4, 6, 11, 13, 15, 19, 21].map((i) => isAutocommit(r[i])),
      [false, false, true, false, false, true, false, true],
    );
    assert.equal(r[7].type, "ok", "BEGIN works again after RELEASE ended the transaction");
    assert.equal(r[12].error.code, "SQLITE_ERROR");
    assert.match(r[12].error.message, /no such savepoint: x/);
  });

  it("fails malformed transaction statements as SQLite does, and answers BEGIN with rowid 0 as a file does", async () => {
    const file = s.files.get("bigint")!;
    for (const sql of ["BEGIN nonsense", "COMMIT garbage", "ROLLBACK please", "BEGIN TRANSACTION a b"]) {
      let expected: { code: string; message: string } | undefined;
      try {
        await file.execute(sql);
      } catch (error) {
        const e = error as { code: string; message: string };
        expected = { code: e.code, message: e.message.replace(/^SQLITE_ERROR: /, "") };
      }
      assert.ok(expected, `${sql} fails on the file`);
      const got = await pipeline(url, { requests: [execute(sql), autocommit, close] });
      assert.deepEqual(got.body.results[0].error, expected, sql);
      assert.equal(isAutocommit(got.body.results[1]), true, `${sql} leaves no transaction open`);
    }
    const begun = await pipeline(url, {
      requests: [execute("BEGIN TRANSACTION READONLY"), autocommit, execute("ROLLBACK"), close],
    });
    assert.equal(begun.body.results[0].response.result.last_insert_rowid, "0");
    assert.equal(isAutocommit(begun.body.results[1]), false);
    const fileBegin = await file.execute("BEGIN");
    await file.execute("ROLLBACK").catch(() => {});
    assert.equal(fileBegin.lastInsertRowid, 0n);
  });

  it("runs a sequence statement by statement: BEGIN in it opens the stream's transaction, an error stops it", async () => {
    const got = await pipeline(url, {
      requests: [
        { type: "sequence", sql: "BEGIN; SELECT count(*) FROM items -- no semicolon after the last" },
        autocommit,
        { type: "sequence", sql: "SELECT 1; COMMIT;" },
        autocommit,
        { type: "sequence", sql: "SAVEPOINT s; SELECT * FROM nowhere; RELEASE s;" },
        autocommit,
        { type: "sequence", sql: "ROLLBACK; SELECT ';' AS semicolon; /* a comment only */" },
        autocommit,
        close,
      ],
    });
    const r = got.body.results;
    assert.deepEqual(r[0], { type: "ok", response: { type: "sequence" } });
    assert.equal(
      isAutocommit(r[1]),
      false,
      "BEGIN in a sequence leaves the transaction open, as on a connection",
    );
    assert.equal(isAutocommit(r[3]), true, "COMMIT in a sequence ends it");
    assert.equal(r[4].error.code, "SQLITE_ERROR");
    assert.match(r[4].error.message, /no such table: nowhere/);
    assert.equal(isAutocommit(r[5]), false, "the sequence stopped at the error, before RELEASE");
    assert.deepEqual(r[6], { type: "ok", response: { type: "sequence" } });
    assert.equal(isAutocommit(r[7]), true);
  });

  it("describes statements on the transaction's snapshot", async () => {
    const open = await pipeline(url, { requests: [execute("BEGIN"), execute("SELECT count(*) FROM kinds")] });
    const baton = open.body.baton;
    assert.equal(typeof baton, "string");
    execFileSync("sqlite3", [s.path, "CREATE TABLE later (x INTEGER)"]);
    await s.sync();
    await s.replica.refresh(1);
    const inside = await pipeline(url, {
      baton,
      requests: [{ type: "describe", sql: "SELECT x FROM later" }, execute("ROLLBACK"), {
        type: "describe",
        sql: "SELECT x FROM later",
      }, close],
    });
    const r = inside.body.results;
    assert.equal(r[0].error.code, "SQLITE_ERROR", "the transaction's snapshot has no table later");
    assert.match(r[0].error.message, /no such table: later/);
    assert.deepEqual(r[2].response.result.cols, [{ name: "x", decltype: "INTEGER" }]);
  });

  it("refuses a batch condition on a step that has not run before it, and still serves", async () => {
    const got = await pipeline(url, {
      requests: [
        {
          type: "batch",
          batch: {
            steps: [
              { stmt: stmt("SELECT 1") },
              { condition: { type: "not", cond: { type: "ok", step: 1 } }, stmt: stmt("SELECT 2") },
            ],
          },
        },
        {
          type: "batch",
          batch: {
            steps: [
              { stmt: stmt("SELECT 1") },
              { condition: { type: "ok", step: 0 }, stmt: stmt("SELECT 2") },
            ],
          },
        },
        close,
      ],
    });
    const r = got.body.results;
    assert.deepEqual(r[0].error, {
      message: "Step 1 of the batch has a condition on step 1, which does not run before it",
      code: "BATCH_COND_BAD_STEP",
    });
    assert.deepEqual(r[1].response.result.step_results[1].rows, [[{ type: "integer", value: "2" }]]);
  });

  it("refuses the pragmas that would change the replica for every caller", async () => {
    const before = s.replica.autoRefresh;
    const got = await pipeline(url, {
      requests: [
        execute("PRAGMA tessera_snapshot_auto_refresh = 0"),
        execute("PRAGMA tessera_snapshot_refresh(2)"),
        execute("PRAGMA tessera_snapshot_async_reload"),
        execute("PRAGMA tessera_snapshot_auto_refresh"),
        execute("PRAGMA tessera_snapshot_sequence"),
        close,
      ],
    });
    const r = got.body.results;
    for (const i of [0, 1, 2]) {
      assert.equal(r[i].error.code, "SQLITE_AUTH", `request ${i}`);
      assert.match(r[i].error.message, /changes the replica for every caller/);
    }
    assert.deepEqual(r[3].response.result.rows, [[{ type: "integer", value: before ? "1" : "0" }]]);
    assert.deepEqual(r[4].response.result.rows, [[{ type: "integer", value: String(s.replica.sequence) }]]);
    assert.equal(s.replica.autoRefresh, before);
    const api = await fetch(`${s.server.url}/v1/db/parity/query`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ sql: "PRAGMA tessera_snapshot_auto_refresh(0)" }),
    });
    assert.equal(api.status, 400);
    assert.equal((await api.json()).code, "SQLITE_AUTH");
    assert.equal(s.replica.autoRefresh, before);
  });

  it("bounds the SQL text a stream keeps stored in all", async () => {
    const text = `SELECT '${"x".repeat(90_000)}'`;
    let baton: string | null = null;
    let refused: Json;
    for (let i = 0; i < 20 && refused === undefined; i++) {
      const got = await pipeline(url, { baton, requests: [{ type: "store_sql", sql_id: i, sql: text }] });
      baton = got.body.baton;
      if (got.body.results[0].type === "error") refused = { at: i, error: got.body.results[0].error };
    }
    assert.ok(refused, "some store_sql is refused");
    assert.equal(refused.error.code, "SQL_TOO_LONG");
    assert.match(refused.error.message, /stores at most 1048576 characters of SQL text in all/);
    assert.equal(refused.at, Math.floor(1048576 / text.length));
    // Closing texts makes room again.
    const room = await pipeline(url, {
      baton,
      requests: [{ type: "close_sql", sql_id: 0 }, { type: "store_sql", sql_id: 100, sql: text }, close],
    });
    assert.equal(room.body.results[1].type, "ok");
  });

  it("refuses JSON API integers outside SQLite's 64 bits with 400", async () => {
    const query = (integer: string) =>
      fetch(`${s.server.url}/v1/db/parity/query`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ sql: "SELECT ? AS n", args: [{ integer }] }),
      });
    const tooBig = await query("9999999999999999999");
    assert.equal(tooBig.status, 400);
    assert.deepEqual(await tooBig.json(), {
      message: "args[0].integer is 9999999999999999999, outside SQLite's 64-bit integers",
      code: "BAD_REQUEST",
    });
    const largest = await query("9223372036854775807");
    assert.equal(largest.status, 200);
    assert.match(await largest.text(), /"n":"9223372036854775807"|"n":9223372036854775807/);
  });
});

describe("result bytes", () => {
  let s: Served;

  before(async () => {
    s = await serveParity("result-bytes", {}, { limits: { maxResultBytes: 1000 } });
  });
  after(async () => await s?.close());

  it("counts UTF-8 bytes, not characters, against maxResultBytes", async () => {
    const euros = "€".repeat(600); // 600 characters, 1800 bytes
    const api = await fetch(`${s.server.url}/v1/db/parity/query`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ sql: "SELECT ? AS s", args: [euros] }),
    });
    assert.equal(api.status, 400);
    assert.equal((await api.json()).code, "RESULT_TOO_LARGE");
    const hrana = await pipeline(`${s.server.url}/parity/v2/pipeline`, {
      requests: [execute("SELECT ? AS s", [{ type: "text", value: euros }]), close],
    });
    assert.equal(hrana.body.results[0].error.code, "RESULT_TOO_LARGE");
    const fits = await pipeline(`${s.server.url}/parity/v2/pipeline`, {
      requests: [execute("SELECT ? AS s", [{ type: "text", value: "€".repeat(200) }]), close],
    });
    assert.equal(fits.body.results[0].response.result.rows[0][0].value, "€".repeat(200));
  });
});
