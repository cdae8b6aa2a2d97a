/**
 * Hrana 2 over HTTP as the protocol defines it, request by request, with plain `fetch`: every request type,
 * batch conditions, values, batons (renewed, single-use, unforgeable, expiring) and answers to bad input,
 * with the server still serving after each.
 */

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Json, pipeline, type Served, serveParity, TOKEN } from "./_fixture.ts";

const stmt = (sql: string, args: unknown[] = [], extra: Record<string, unknown> = {}) => ({
  sql,
  args,
  named_args: [],
  want_rows: true,
  ...extra,
});
const execute = (sql: string, args: unknown[] = []) => ({ type: "execute", stmt: stmt(sql, args) });

describe("the Hrana 2 pipeline endpoint", () => {
  let s: Served;
  let url: string;

  before(async () => {
    s = await serveParity("protocol", {}, { streams: { idleMs: 300 }, publicMetrics: true });
    url = `${s.server.url}/parity/v2/pipeline`;
  });
  after(async () => await s?.close());

  async function stillServing(): Promise<void> {
    const ok = await pipeline(url, { requests: [execute("SELECT count(*) FROM kinds"), { type: "close" }] });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body.results[0].response.result.rows, [[{ type: "integer", value: "9" }]]);
    assert.equal((await fetch(`${s.server.url}/healthz`)).status, 200);
  }

  it("answers the version probes", async () => {
    for (const path of ["/v2", "/v3", "/parity/v2", "/parity/v3"]) {
      const response = await fetch(`${s.server.url}${path}`);
      assert.equal(response.status, 200, path);
      await response.body?.cancel();
    }
  });

  it("executes with typed values: integers as strings, floats (-0.0 too), text, blobs, nulls", async () => {
    const got = await pipeline(url, {
      requests: [
        execute("SELECT i, r, t, b, u FROM kinds WHERE id = 2"),
        execute("SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e", [
          { type: "integer", value: "-9223372036854775808" },
          { type: "float", value: 2.5 },
          { type: "text", value: "é\u0000x" },
          { type: "blob", base64: "AP8Q" },
          { type: "null" },
        ]),
        { type: "close" },
      ],
    });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("content-type"), "application/json");
    assert.equal(got.body.baton, null);
    const [first, second, close] = got.body.results;
    assert.deepEqual(first.response.result.cols, [
      { name: "i", decltype: "INTEGER" },
      { name: "r", decltype: "REAL" },
      { name: "t", decltype: "TEXT" },
      { name: "b", decltype: "BLOB" },
      { name: "u", decltype: null },
    ]);
    assert.deepEqual(first.response.result.rows, [[
      { type: "integer", value: "9007199254740991" },
      // SQLite stores an integral REAL as an integer on disk: -0.0 reads back as 0.0, on the file too.
      { type: "float", value: 0 },
      { type: "text", value: "héllo wörld" },
      { type: "blob", base64: "AP8Q" },
      { type: "integer", value: "42" },
    ]]);
    // A float -0.0 bound and read back keeps its sign through the JSON.
    const raw = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body:
        '{"requests":[{"type":"execute","stmt":{"sql":"SELECT ?","args":[{"type":"float","value":-0.0}]}}]}',
    });
    assert.match(await raw.text(), /"rows":\[\[\{"type":"float","value":-0\.0\}\]\]/);
    assert.deepEqual(second.response.result.rows[0], [
      { type: "integer", value: "-9223372036854775808" },
      { type: "float", value: 2.5 },
      // As @libsql/client on the file: text is read up to a NUL (the bound value is whole: hex() shows it).
      { type: "text", value: "é" },
      { type: "blob", base64: "AP8Q" },
      { type: "null" },
    ]);
    assert.equal(second.response.result.affected_row_count, 0);
    assert.deepEqual(close, { type: "ok", response: { type: "close" } });
  });

  it("binds named arguments with or without their prefix, and refuses positional and named at once", async () => {
    const named = (name: string) => ({
      type: "execute",
      stmt: { sql: "SELECT :x AS v", args: [], named_args: [{ name, value: { type: "text", value: name } }] },
    });
    const got = await pipeline(url, {
      requests: [
        named(":x"),
        named("x"),
        {
          type: "execute",
          stmt: {
            sql: "SELECT ?, :x",
            args: [{ type: "null" }],
            named_args: [{ name: "x", value: { type: "null" } }],
          },
        },
        { type: "close" },
      ],
    });
    assert.deepEqual(got.body.results[0].response.result.rows, [[{ type: "text", value: ":x" }]]);
    assert.deepEqual(got.body.results[1].response.result.rows, [[{ type: "text", value: "x" }]]);
    assert.equal(got.body.results[2].type, "error");
    assert.equal(got.body.results[2].error.code, "HRANA_PROTO_ERROR");
  });

  it("stores and closes SQL texts, describes statements and runs sequences", async () => {
    const got = await pipeline(url, {
      requests: [
        { type: "store_sql", sql_id: 3, sql: "SELECT name FROM items WHERE id = ?" },
        { type: "execute", stmt: { sql_id: 3, args: [{ type: "integer", value: "5" }], want_rows: true } },
        { type: "store_sql", sql_id: 3, sql: "SELECT 1" },
        { type: "describe", sql_id: 3 },
        { type: "describe", sql: "SELECT id, name AS n, ?, :k FROM items" },
        { type: "describe", sql: "EXPLAIN SELECT 1" },
        { type: "close_sql", sql_id: 3 },
        { type: "execute", stmt: { sql_id: 3, args: [] } },
        { type: "sequence", sql: "SELECT 1; SELECT 2;" },
        { type: "sequence", sql: "SELECT 1; DELETE FROM items;" },
        { type: "close" },
      ],
    });
    const r = got.body.results;
    assert.equal(r.length, 11, "one result per request");
    assert.deepEqual(r[0], { type: "ok", response: { type: "store_sql" } });
    assert.deepEqual(r[1].response.result.rows, [[{ type: "text", value: "item 5" }]]);
    assert.equal(r[2].error.code, "HRANA_PROTO_ERROR", "an id is stored once");
    assert.deepEqual(r[3].response.result.params, [{ name: null }]);
    assert.deepEqual(r[4].response, {
      type: "describe",
      result: {
        params: [{ name: null }, { name: ":k" }],
        cols: [
          { name: "id", decltype: "INTEGER" },
          { name: "n", decltype: "TEXT" },
          { name: "?", decltype: null },
          { name: ":k", decltype: null },
        ],
        is_explain: false,
        is_readonly: true,
      },
    });
    assert.equal(r[5].response.result.is_explain, true);
    assert.deepEqual(r[6], { type: "ok", response: { type: "close_sql" } });
    assert.equal(r[7].error.code, "HRANA_PROTO_ERROR", "a closed id is gone");
    assert.deepEqual(r[8], { type: "ok", response: { type: "sequence" } });
    assert.equal(r[9].error.code, "SQLITE_READONLY");
  });

  it("runs batches under conditions: ok, error, not, and, or, is_autocommit", async () => {
    const step = (sql: string, condition?: unknown) => ({
      ...(condition ? { condition } : {}),
      stmt: stmt(sql),
    });
    const got = await pipeline(url, {
      requests: [{
        type: "batch",
        batch: {
          steps: [
            step("SELECT 1"), // 0 ok
            step("SELECT * FROM nowhere"), // 1 error
            step("SELECT 2", { type: "ok", step: 1 }), // 2 skipped
            step("SELECT 3", { type: "error", step: 1 }), // 3 runs
            step("SELECT 4", { type: "not", cond: { type: "ok", step: 2 } }), // 4 runs (2 was skipped)
            step("SELECT 5", { type: "and", conds: [{ type: "ok", step: 0 }, { type: "ok", step: 1 }] }), // 5 skipped
            step("SELECT 6", { type: "or", conds: [{ type: "ok", step: 1 }, { type: "ok", step: 3 }] }), // 6 runs
            step("BEGIN", { type: "is_autocommit" }), // 7 runs
            step("SELECT 8", { type: "is_autocommit" }), // 8 skipped: in a transaction
            step("COMMIT"), // 9
            step("SELECT 10", { type: "is_autocommit" }), // 10 runs
          ],
        },
      }, { type: "close" }],
    });
    const { step_results: results, step_errors: errors } = got.body.results[0].response.result;
    const ran = results.map((
      r: unknown,
      i: number,
    ) => (r === null ? (errors[i] === null ? "skipped" : "error") : "ok"));
    assert.deepEqual(ran, [
      "ok",
      "error",
      "skipped",
      "ok",
      "ok",
      "skipped",
      "ok",
      "ok",
      "skipped",
      "ok",
      "ok",
    ]);
    assert.deepEqual(errors[1], { message: "no such table: nowhere", code: "SQLITE_ERROR" });
    assert.deepEqual(results[6].rows, [[{ type: "integer", value: "6" }]]);
  });

  it("keeps a transaction across requests with a new baton each time, and tells autocommit", async () => {
    const first = await pipeline(url, {
      requests: [{ type: "get_autocommit" }, execute("BEGIN TRANSACTION READONLY"), {
        type: "get_autocommit",
      }],
    });
    assert.deepEqual(first.body.results.map((r: Json) => r.response.is_autocommit ?? r.response.type), [
      true,
      "execute",
      false,
    ]);
    const baton1 = first.body.baton;
    assert.match(baton1, /^[A-Za-z0-9_-]{24}$/);
    const second = await pipeline(url, { baton: baton1, requests: [execute("SELECT count(*) FROM items")] });
    assert.equal(second.status, 200);
    const baton2 = second.body.baton;
    assert.notEqual(baton2, baton1, "each response hands out a new baton");
    const replay = await pipeline(url, { baton: baton1, requests: [execute("SELECT 1")] });
    assert.equal(replay.status, 400);
    assert.deepEqual(replay.body, {
      message: "The baton names no stream of this database",
      code: "BATON_INVALID",
    });
    const nested = await pipeline(url, { baton: baton2, requests: [execute("BEGIN")] });
    assert.equal(nested.body.results[0].error.message, "cannot start a transaction within a transaction");
    const end = await pipeline(url, {
      baton: nested.body.baton,
      requests: [execute("COMMIT"), { type: "get_autocommit" }, execute("COMMIT"), { type: "close" }],
    });
    assert.equal(end.body.results[1].response.is_autocommit, true);
    assert.equal(end.body.results[2].error.message, "cannot commit - no transaction is active");
    assert.equal(end.body.baton, null);
  });

  it("refuses forged batons, batons of another database and expired streams, and still serves", async () => {
    const forged = await pipeline(url, { baton: "A".repeat(24), requests: [execute("SELECT 1")] });
    assert.equal(forged.status, 400);
    assert.equal(forged.body.code, "BATON_INVALID");
    const open = await pipeline(url, { requests: [execute("BEGIN")] });
    assert.equal(s.app.inFlight, 0);
    // Idle past the table's 300 ms: the stream is closed and its transaction rolled back.
    await new Promise((resolve) => setTimeout(resolve, 700));
    const late = await pipeline(url, { baton: open.body.baton, requests: [execute("SELECT 1")] });
    assert.equal(late.status, 400);
    assert.equal(late.body.code, "STREAM_EXPIRED");
    assert.match(late.body.message, /closed after 300 ms without a request/);
    const metrics = await (await fetch(`${s.server.url}/metrics`)).text();
    assert.match(metrics, /^tessera_hrana_streams 0$/m, "no stream is held");
    await stillServing();
  });

  it("answers bad input with the documented status and code, and still serves", async () => {
    const cases: [string, unknown, number, string][] = [
      ["malformed JSON", "{ not json", 400, "BAD_REQUEST"],
      ["not an object", "[1,2]", 400, "HRANA_PROTO_ERROR"],
      ["no requests", { baton: null }, 400, "HRANA_PROTO_ERROR"],
      ["an unknown request type", { requests: [{ type: "fly" }] }, 400, "HRANA_PROTO_ERROR"],
      [
        "a statement without SQL",
        { requests: [{ type: "execute", stmt: { args: [] } }] },
        400,
        "HRANA_PROTO_ERROR",
      ],
      [
        "an integer as a number",
        {
          requests: [execute("SELECT ?", [{ type: "integer", value: 5 }])],
        },
        400,
        "HRANA_PROTO_ERROR",
      ],
      [
        "an integer past 64 bits",
        {
          requests: [execute("SELECT ?", [{ type: "integer", value: "9223372036854775808" }])],
        },
        400,
        "HRANA_PROTO_ERROR",
      ],
      [
        "bad base64",
        { requests: [execute("SELECT ?", [{ type: "blob", base64: "***" }])] },
        400,
        "HRANA_PROTO_ERROR",
      ],
      ["a baton that is not a string", { baton: 7, requests: [] }, 400, "HRANA_PROTO_ERROR"],
    ];
    for (const [what, body, status, code] of cases) {
      const got = await pipeline(url, body);
      assert.equal(got.status, status, what);
      assert.equal(got.headers.get("content-type"), "application/json", what);
      assert.equal(got.body.code, code, `${what}: ${JSON.stringify(got.body)}`);
      assert.equal(typeof got.body.message, "string", what);
    }
    for (
      const path of [
        "/v3/pipeline",
        "/parity/v3/pipeline",
        "/v3/cursor",
        "/v3-protobuf/pipeline",
        "/v1/pipeline",
      ]
    ) {
      const got = await pipeline(`${s.server.url}${path}`, { requests: [] });
      assert.equal(got.status, 404, path);
      assert.equal(got.body.code, "NOT_FOUND", path);
    }
    const huge = await pipeline(url, { requests: [execute(`SELECT '${"x".repeat(2 << 20)}'`)] });
    assert.equal(huge.status, 413);
    assert.equal(huge.body.code, "PAYLOAD_TOO_LARGE");
    await stillServing();
  });

  it("answers SQL errors in the result, as the file gives them, and writes nothing", async () => {
    const target = join(s.dir, "vacuumed.db");
    const got = await pipeline(url, {
      requests: [
        execute("SELEC 1"),
        execute("SELECT ?", [{ type: "null" }, { type: "null" }]),
        execute("SELECT ?, ?", [{ type: "null" }]),
        execute(`VACUUM INTO '${target}'`),
        execute(`ATTACH '${join(s.dir, "a.db")}' AS a`),
        execute("SELECT load_extension('x')"),
        execute("BEGIN IMMEDIATE"),
        { type: "close" },
      ],
    });
    const errors = got.body.results.map((r: Json) => r.type === "error" ? r.error.code : "ok");
    const file = s.files.get("bigint")!;
    const expected = async (sql: string, args: unknown[]) =>
      await file.execute({ sql, args: args as never }).then(() => "ok", (e) => e.code);
    assert.deepEqual(errors, [
      "SQLITE_ERROR",
      await expected("SELECT ?", [null, null]),
      await expected("SELECT ?, ?", [null]),
      "SQLITE_READONLY",
      "SQLITE_AUTH",
      "SQLITE_AUTH",
      "SQLITE_READONLY",
      "ok",
    ]);
    assert.equal(got.body.results[0].error.message, 'near "SELEC": syntax error');
    assert.equal(existsSync(target), false);
    assert.equal(existsSync(join(s.dir, "a.db")), false);
    await stillServing();
  });
});

describe("a pipeline's database", () => {
  it("is the default one at /v2/pipeline, and needs its token", async () => {
    const s = await serveParity("default");
    try {
      const ok = await pipeline(`${s.server.url}/v2/pipeline`, {
        requests: [execute("SELECT 1"), { type: "close" }],
      });
      assert.equal(ok.status, 200);
      const none = await pipeline(`${s.server.url}/v2/pipeline`, { requests: [] }, {});
      assert.equal(none.status, 401);
      const wrong = await pipeline(`${s.server.url}/v2/pipeline`, { requests: [] }, {
        authorization: "Bearer nope",
      });
      assert.deepEqual(wrong.body, { message: "The bearer token is not valid", code: "UNAUTHORIZED" });
      assert.equal(TOKEN.length > 8, true);
    } finally {
      await s.close();
    }
  });
});
