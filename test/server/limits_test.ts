/**
 * Who may read, and how much: bearer tokens per database (answers that never tell whether a database
 * exists), and each limit with its documented status and code: request body, SQL length, rows and bytes
 * returned, a statement's time (interrupted while the server keeps answering), concurrent requests and
 * streams.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { openReplica } from "../../src/replica/open.ts";
import type { Replica } from "../../src/replica/replica.ts";
import { createApp } from "../../src/server/app.ts";
import { listen, type Listening } from "../../src/server/serve.ts";
import { type Json, pipeline, type Served, serveParity, TOKEN } from "./_fixture.ts";

const execute = (sql: string) => ({
  type: "execute",
  stmt: { sql, args: [], named_args: [], want_rows: true },
});
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe("bearer tokens", () => {
  let s: Served;
  const extra: Replica[] = [];
  let server: Listening;

  before(async () => {
    s = await serveParity("auth");
    for (let i = 0; i < 2; i++) {
      extra.push(await openReplica("parity", { store: s.store, pollIntervalMs: 0, intMode: "bigint" }));
    }
    const app = createApp({
      databases: {
        parity: { replica: s.replica, tokens: [TOKEN] },
        other: { replica: extra[0]!, tokens: ["other-token"] },
        open: { replica: extra[1]!, public: true },
      },
      closeReplicas: false,
    });
    server = await listen(app, { port: 0 });
  });
  after(async () => {
    await server?.close();
    for (const replica of extra) replica.close();
    await s?.close();
  });

  const ask = (db: string, headers: Record<string, string>) =>
    pipeline(
      `${server.url}/${db}/v2/pipeline`,
      { requests: [execute("SELECT 1"), { type: "close" }] },
      headers,
    );

  it("opens a database to its own tokens, and a public one to anyone", async () => {
    assert.equal((await ask("parity", bearer(TOKEN))).status, 200);
    assert.equal((await ask("other", bearer("other-token"))).status, 200);
    assert.equal((await ask("open", {})).status, 200);
    assert.equal((await ask("open", bearer("anything"))).status, 200);
  });

  it("answers 401 without a valid token and 403 for a database the token does not open, existing or not", async () => {
    const none = await ask("parity", {});
    assert.equal(none.status, 401);
    assert.deepEqual(none.body, {
      message: "A bearer token is required: send Authorization: Bearer <token>",
      code: "UNAUTHORIZED",
    });
    assert.deepEqual(await ask("ghost", {}), { ...none, headers: (await ask("ghost", {})).headers });
    const bad = await ask("parity", bearer(`${TOKEN}x`));
    assert.deepEqual(bad.body, { message: "The bearer token is not valid", code: "UNAUTHORIZED" });
    assert.deepEqual((await ask("ghost", bearer(`${TOKEN}x`))).body, bad.body);
    const forbidden = await ask("other", bearer(TOKEN));
    const ghost = await ask("ghost", bearer(TOKEN));
    assert.equal(forbidden.status, 403);
    assert.equal(ghost.status, 403);
    assert.deepEqual(forbidden.body, {
      message: 'The bearer token does not open database "other"',
      code: "FORBIDDEN",
    });
    assert.deepEqual(ghost.body, {
      message: 'The bearer token does not open database "ghost"',
      code: "FORBIDDEN",
    });
    const json = await fetch(`${server.url}/v1/db/ghost/status`, { headers: bearer(TOKEN) });
    assert.equal(json.status, 403);
    await json.body?.cancel();
    assert.equal((await ask("parity", { authorization: `Basic ${btoa("a:b")}` })).status, 401);
  });
});

describe("limits", () => {
  let s: Served;
  let url: string;

  before(async () => {
    s = await serveParity("limits", { queryTimeoutMs: 500 }, {
      limits: {
        maxBodyBytes: 4096,
        maxSqlLength: 1000,
        maxRows: 100,
        maxResultBytes: 20_000,
        maxConcurrentRequests: 3,
      },
      streams: { maxStreams: 2 },
      maxBookmarkWaitMs: 3000,
    });
    url = `${s.server.url}/parity/v2/pipeline`;
  });
  after(async () => await s?.close());

  async function stillServing(): Promise<void> {
    const ok = await pipeline(url, { requests: [execute("SELECT 1"), { type: "close" }] });
    assert.equal(ok.status, 200);
  }

  it("refuses a body past maxBodyBytes with 413, declared or streamed", async () => {
    const big = { requests: [execute(`SELECT '${"x".repeat(5000)}'`)] };
    const declared = await pipeline(url, big);
    assert.equal(declared.status, 413);
    assert.deepEqual(declared.body, {
      message: "The request body is larger than the limit of 4096 bytes",
      code: "PAYLOAD_TOO_LARGE",
    });
    const text = JSON.stringify(big);
    const streamed = await fetch(url, {
      method: "POST",
      headers: bearer(TOKEN),
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(text));
          controller.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    assert.equal(streamed.status, 413);
    await streamed.body?.cancel();
    await stillServing();
  });

  it("refuses SQL past maxSqlLength, rows past maxRows and results past maxResultBytes", async () => {
    const long = `SELECT 1 ${"-".repeat(1000)}`;
    const got = await pipeline(url, {
      requests: [
        execute(long),
        { type: "store_sql", sql_id: 1, sql: long },
        execute("SELECT id FROM items"),
        execute("SELECT id FROM items LIMIT 100"),
        execute("SELECT b FROM kinds WHERE id = 3"),
        { type: "close" },
      ],
    });
    const r = got.body.results;
    assert.deepEqual(r[0].error, {
      message: "The SQL text is 1009 characters long, more than the limit of 1000",
      code: "SQL_TOO_LONG",
    });
    assert.equal(r[1].error.code, "SQL_TOO_LONG");
    assert.equal(r[2].error.code, "RESULT_TOO_LARGE");
    assert.match(r[2].error.message, /limit of 100 rows/);
    assert.equal(r[3].response.result.rows.length, 100);
    assert.equal(r[4].error.code, "RESULT_TOO_LARGE");
    assert.match(r[4].error.message, /limit of 20000 bytes/);
    const api = await fetch(`${s.server.url}/v1/db/parity/query`, {
      method: "POST",
      headers: bearer(TOKEN),
      body: JSON.stringify({ sql: "SELECT id FROM items" }),
    });
    assert.equal(api.status, 400);
    assert.equal((await api.json()).code, "RESULT_TOO_LARGE");
    await stillServing();
  });

  /**
   * Sends `requests` (one runaway statement), and while it runs, a quick query and /healthz; returns the
   * runaway's answer once both were answered before it.
   */
  async function runawayWhileServing(requests: unknown[]) {
    const started = Date.now();
    let runawayDone = 0;
    const runaway = pipeline(url, { requests }).then((r) => {
      runawayDone = Date.now();
      return r;
    });
    await new Promise((resolve) => setTimeout(resolve, 150));
    const quick = await pipeline(url, {
      requests: [execute("SELECT count(*) FROM items"), { type: "close" }],
    });
    const quickDone = Date.now();
    assert.equal(quick.status, 200);
    const health = await fetch(`${s.server.url}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const got = await runaway;
    assert.ok(runawayDone > quickDone, "a quick query was answered while the runaway one ran");
    assert.deepEqual(got.body.results[0].error, {
      message: "the statement ran longer than the time limit of 500 ms and was interrupted",
      code: "SQLITE_INTERRUPT",
    });
    assert.ok(runawayDone - started >= 500, "it ran until its limit");
    return got;
  }

  it("interrupts a statement at its time limit while the server answers others", async () => {
    const got = await runawayWhileServing([
      execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"),
    ]);
    // The stream it left open still works.
    const next = await pipeline(url, {
      baton: got.body.baton,
      requests: [execute("SELECT 1"), { type: "close" }],
    });
    assert.equal(next.status, 200);
  });

  it("interrupts a runaway statement in a sequence at its time limit while the server answers others", async () => {
    await runawayWhileServing([{
      type: "sequence",
      sql:
        "SELECT 1; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c;",
    }, { type: "close" }]);
  });

  it("counts a statement's wait for the worker against its time limit", async () => {
    const runaway = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    // Longer than the 50 ms slice on the server's thread, well within the limit alone.
    const medium = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 600000) " +
      "SELECT count(*) FROM c";
    const alone = await pipeline(url, { requests: [execute(medium), { type: "close" }] });
    assert.deepEqual(alone.body.results[0].response.result.rows, [[{ type: "integer", value: "600000" }]]);
    const runaways = [1, 2].map(() => pipeline(url, { requests: [execute(runaway), { type: "close" }] }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Behind two runaways that each hold the worker for the whole limit, its clock runs out in the queue.
    const queued = await pipeline(url, { requests: [execute(medium), { type: "close" }] });
    assert.deepEqual(queued.body.results[0].error, {
      message: "the statement ran longer than the time limit of 500 ms and was interrupted",
      code: "SQLITE_INTERRUPT",
    });
    for (const r of await Promise.all(runaways)) {
      assert.equal(r.body.results[0].error.code, "SQLITE_INTERRUPT");
    }
    await stillServing();
  });

  it("answers 429 past maxConcurrentRequests and 503 past the stream limit", async () => {
    // Three requests wait for a sequence the replica never reaches.
    const waiting = [1, 2, 3].map(() =>
      pipeline(url, { requests: [execute("SELECT 1"), { type: "close" }] }, {
        ...bearer(TOKEN),
        "Tessera-Min-Sequence": "999",
        "Tessera-Wait-Ms": "800",
      })
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    const refused = await fetch(url, { method: "POST", headers: bearer(TOKEN), body: "{}" });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("retry-after"), "1");
    assert.deepEqual(await refused.json(), {
      message: "The server answers 3 requests at once, its limit: retry shortly",
      code: "TOO_MANY_REQUESTS",
    });
    for (const got of await Promise.all(waiting)) {
      assert.equal(got.status, 412);
      assert.equal(got.body.code, "BOOKMARK_NOT_REACHED");
    }
    const begin = () => pipeline(url, { requests: [execute("BEGIN")] });
    const held: Json[] = [await begin(), await begin()];
    assert.ok(held.every((r) => r.status === 200 && typeof r.body.baton === "string"));
    const third = await begin();
    assert.equal(third.status, 503);
    assert.equal(third.body.code, "TOO_MANY_STREAMS");
    // A pipeline that closes its stream needs no room; closing one makes room.
    await stillServing();
    await pipeline(url, { baton: held[0].body.baton, requests: [{ type: "close" }] });
    const again = await begin();
    assert.equal(again.status, 200);
    for (const r of [held[1], again]) {
      await pipeline(url, { baton: r.body.baton, requests: [{ type: "close" }] });
    }
  });
});
