/**
 * The JSON API for curl users, `/metrics`, `/healthz`, graceful shutdown, the server config and the edge
 * `fetch` handler.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient } from "@libsql/client";
import { TesseraError } from "../../src/errors.ts";
import { openReplica } from "../../src/replica/open.ts";
import { type AppOptions, createApp, type ServedDatabase } from "../../src/server/app.ts";
import { openServerDatabases, parseServerConfig } from "../../src/server/config.ts";
import { createFetchHandler } from "../../src/server/edge.ts";
import { type Json, type Served, serveParity, TOKEN } from "./_fixture.ts";

const auth = { authorization: `Bearer ${TOKEN}` };

async function post(url: string, body: unknown): Promise<{ status: number; body: Json; headers: Headers }> {
  const response = await fetch(url, { method: "POST", headers: auth, body: JSON.stringify(body) });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

describe("the JSON API", () => {
  let s: Served;
  let base: string;

  before(async () => {
    s = await serveParity("api");
    base = `${s.server.url}/v1/db/parity`;
  });
  after(async () => await s?.close());

  it("POST /query answers columns and rows, binding positional and named arguments of every type", async () => {
    const got = await post(`${base}/query`, {
      sql: "SELECT id, i, t, b FROM kinds WHERE id IN (?, ?) ORDER BY id",
      args: [2, { integer: "4" }],
    });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("Tessera-Sequence"), "1");
    assert.deepEqual(got.body, {
      columns: ["id", "i", "t", "b"],
      rows: [
        { id: 2, i: 9007199254740991, t: "héllo wörld", b: "AP8Q" },
        { id: 4, i: "-9223372036854775808", t: "a", b: null },
      ],
      sequence: 1,
    });
    const named = await post(`${base}/query`, {
      sql: "SELECT :a AS a, $b AS b, @c AS c, hex(:d) AS d, :e AS e",
      args: { a: 1.5, b: "x", c: null, d: { base64: "AP8Q" }, e: true },
    });
    assert.deepEqual(named.body.rows, [{ a: 1.5, b: "x", c: null, d: "00FF10", e: 1 }]);
  });

  it("answers bad requests and SQL errors with 400 and a code, writes included", async () => {
    const cases: [unknown, string, RegExp][] = [
      [{ sql: "SELECT * FROM nowhere" }, "SQLITE_ERROR", /no such table: nowhere/],
      [{ sql: "DELETE FROM items" }, "SQLITE_READONLY", /attempt to write a readonly database/],
      [{ sql: "ATTACH 'x.db' AS x" }, "SQLITE_AUTH", /refuses ATTACH/],
      [{ query: "SELECT 1" }, "BAD_REQUEST", /The body must be/],
      [{ sql: "SELECT ?", args: [[1]] }, "BAD_REQUEST", /args\[0\] is not a JSON value/],
      [{ sql: "SELECT ?", args: "1" }, "BAD_REQUEST", /args must be an array or an object/],
    ];
    for (const [body, code, message] of cases) {
      const got = await post(`${base}/query`, body);
      assert.equal(got.status, 400, code);
      assert.equal(got.body.code, code);
      assert.match(got.body.message, message);
    }
    const notJson = await fetch(`${base}/query`, { method: "POST", headers: auth, body: "{sql:" });
    assert.equal(notJson.status, 400);
    assert.equal((await notJson.json()).code, "BAD_REQUEST");
    const method = await fetch(`${base}/query`, { headers: auth });
    assert.equal(method.status, 404);
    assert.equal((await method.json()).code, "NOT_FOUND");
  });

  it("GET /status and POST /refresh follow new snapshots", async () => {
    const status = await (await fetch(`${base}/status`, { headers: auth })).json();
    assert.equal(status.name, "parity");
    assert.equal(status.sequence, s.replica.sequence);
    assert.equal(status.engine, "wasm");
    const writer = createClient({ url: `file:${s.path}` });
    await writer.execute("DELETE FROM items WHERE id > 1000");
    writer.close();
    const sequence = await s.sync();
    const refreshed = await post(`${base}/refresh`, {});
    assert.deepEqual(refreshed.body, { name: "parity", before: status.sequence, sequence });
    const count = await post(`${base}/query`, { sql: "SELECT count(*) AS n FROM items" });
    assert.deepEqual(count.body.rows, [{ n: 1000 }]);
  });
});

describe("GET /metrics and GET /healthz", () => {
  const METRICS_TOKEN = "metrics-token-9876";
  let s: Served;

  before(async () => {
    s = await serveParity("metrics", {}, { metricsToken: METRICS_TOKEN });
  });
  after(async () => await s?.close());

  /** An app of its own on the fixture's replica, answering /metrics through `app.fetch`. */
  async function metricsOf(options: Omit<AppOptions, "databases">, publicToo: boolean, privateToo: boolean) {
    const databases: Record<string, ServedDatabase> = {};
    if (publicToo) databases.pub = { replica: s.replica, public: true };
    if (privateToo) databases["secret-db"] = { replica: s.replica, tokens: [TOKEN] };
    const app = createApp({ databases, ...options, closeReplicas: false });
    try {
      const response = await app.fetch(new Request("http://server/metrics"));
      return { status: response.status, text: await response.text() };
    } finally {
      await app.shutdown();
    }
  }

  it("refuses, at creation, tokens no client could send, naming where they were and never the token", () => {
    for (
      const [options, where] of [
        [
          { databases: { app: { replica: s.replica, tokens: ["good", "bad token"] } } },
          'Token 2 of database "app"',
        ],
        [
          { databases: { app: { replica: s.replica, public: true } }, metricsToken: "" },
          "Token 1 of metricsToken",
        ],
      ] as const
    ) {
      assert.throws(() => createApp(options as AppOptions), (error: Error) => {
        assert.ok(error instanceof TypeError);
        assert.ok(error.message.startsWith(where), error.message);
        assert.ok(!error.message.includes("bad token"));
        return true;
      });
    }
  });

  it("counts requests and shows each replica's sequence, with the metrics token; /healthz answers 200", async () => {
    const base = `${s.server.url}/v1/db/parity`;
    for (const sql of ["SELECT 1", "SELECT 2", "SELECT 3", "SELECT * FROM nowhere"]) {
      await post(`${base}/query`, { sql });
    }
    const response = await fetch(`${s.server.url}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const text = await response.text();
    assert.match(text, /^# TYPE tessera_http_requests_total counter$/m);
    const ok = /^tessera_http_requests_total\{route="\/v1\/db\/:name\/query",status="200"\} (\d+)$/m.exec(
      text,
    );
    assert.ok(ok && Number(ok[1]) >= 3, "query requests are counted");
    assert.match(text, /^tessera_http_requests_total\{route="\/v1\/db\/:name\/query",status="400"\} \d+$/m);
    assert.match(
      text,
      /^tessera_http_request_duration_seconds_bucket\{route="\/v1\/db\/:name\/query",le="\+Inf"\} \d+$/m,
    );
    assert.match(
      text,
      new RegExp(`^tessera_replica_sequence\\{database="parity"\\} ${s.replica.sequence}$`, "m"),
    );
    assert.match(text, /^tessera_replica_lag_seconds\{database="parity"\} [\d.e+-]+$/m);
    assert.match(text, /^tessera_replica_chunk_hits_total\{database="parity"\} \d+$/m);
    const health = await fetch(`${s.server.url}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { ok: true, databases: 1, closed: 0 });
  });

  it("answers 401 without the metrics token, and to a database's token, naming no database", async () => {
    for (const headers of [{}, auth, { authorization: `bearer ${METRICS_TOKEN}x` }]) {
      const response = await fetch(`${s.server.url}/metrics`, { headers });
      assert.equal(response.status, 401);
      const body = await response.json();
      assert.deepEqual(body, {
        code: "UNAUTHORIZED",
        message: "/metrics needs its bearer token: send Authorization: Bearer <metricsToken>",
      });
    }
  });

  it("without a metrics token, answers 401 while a database needs a token, unless publicMetrics", async () => {
    const closed = await metricsOf({}, true, true);
    assert.equal(closed.status, 401);
    const body = JSON.parse(closed.text);
    assert.equal(body.code, "UNAUTHORIZED");
    assert.match(body.message, /set metricsToken \(tessera serve --metrics-token\)/);
    assert.match(body.message, /publicMetrics: true \(--public-metrics\)/);
    assert.doesNotMatch(closed.text, /secret-db|\bpub\b/);
    assert.equal((await metricsOf({}, false, true)).status, 401);
    assert.equal((await metricsOf({ publicMetrics: false }, false, true)).status, 401);

    const open = await metricsOf({ publicMetrics: true }, true, true);
    assert.equal(open.status, 200);
    assert.match(open.text, /^tessera_replica_sequence\{database="secret-db"\} \d+$/m);
    const allPublic = await metricsOf({}, true, false);
    assert.equal(allPublic.status, 200, "every database is public: nothing to hide");
    assert.match(allPublic.text, /^tessera_replica_sequence\{database="pub"\} \d+$/m);
    const tokenWins = await metricsOf({ metricsToken: METRICS_TOKEN, publicMetrics: true }, true, false);
    assert.equal(tokenWins.status, 401, "a metrics token, once set, is always needed");
  });
});

describe("a server's config", () => {
  it("is checked whole, each problem named, no secret shown", () => {
    const env = { APP_TOKEN: "from-env-secret" };
    const config = parseServerConfig(
      {
        listen: { port: 0 },
        store: "file:///backups",
        databases: {
          app: { tokens: ["env:APP_TOKEN"], load: "lazy" },
          pub: { public: true, engine: "native" },
        },
      },
      "test",
      env,
    );
    assert.deepEqual(config.databases.get("app")?.tokens, ["from-env-secret"]);
    assert.equal(config.databases.get("app")?.queryTimeoutMs, 10_000);
    assert.equal(config.databases.get("pub")?.queryTimeoutMs, 0);
    const invalid = (raw: unknown, message: RegExp) => {
      assert.throws(() => parseServerConfig(raw, "test", env), (error: unknown) => {
        assert.ok(error instanceof TesseraError);
        assert.equal(error.code, "CONFIG_INVALID");
        assert.match(error.message, message);
        assert.doesNotMatch(error.message, /from-env-secret/);
        return true;
      });
    };
    invalid({ databases: {} }, /databases names no database/);
    invalid({ store: "file:///x", databases: { a: {} } }, /databases\.a has no tokens/);
    invalid({ databases: { a: { public: true } } }, /databases\.a has no store/);
    invalid(
      { store: "file:///x", databases: { a: { public: true, engin: "wasm" } } },
      /databases\.a\.engin is not a field/,
    );
    invalid(
      { store: "file:///x", databases: { a: { tokens: ["env:MISSING"] } } },
      /MISSING, which is not set/,
    );
    invalid(
      { store: "file:///x", databases: { a: { public: true, engine: "native", queryTimeoutMs: 5 } } },
      /needs engine "wasm"/,
    );
    invalid(
      { store: "file:///x", databases: { a: { public: true } }, limits: { maxRows: 0 } },
      /limits\.maxRows is 0/,
    );
    invalid({ store: "file:///x", databases: { a: { public: true } }, default: "b" }, /default is "b"/);
  });

  it("opens every database with its store requests counted, or none", async () => {
    const s = await serveParity("config");
    try {
      const config = parseServerConfig({
        store: `file://${join(s.dir, "store")}`,
        databases: { parity: { public: true }, again: { source: "parity", public: true, load: "lazy" } },
      }, "test");
      const options = await openServerDatabases(config);
      const app = createApp(options);
      const response = await app.fetch(
        new Request("http://server/v1/db/again/query", {
          method: "POST",
          body: '{"sql":"SELECT count(*) AS n FROM items"}',
        }),
      );
      assert.deepEqual((await response.json()).rows, [{ n: 2000 }]);
      const metrics = await (await app.fetch(new Request("http://server/metrics"))).text();
      assert.match(metrics, /^tessera_store_requests_total\{database="again",op="get"\} [1-9]\d*$/m);
      assert.match(metrics, /^tessera_store_read_bytes_total\{database="again"\} [1-9]\d*$/m);
      await app.shutdown();
      const missing = parseServerConfig({
        store: `file://${join(s.dir, "store")}`,
        databases: { parity: { public: true }, ghost: { public: true } },
      }, "test");
      await assert.rejects(openServerDatabases(missing), /Cannot open database "ghost" \(ghost\)/);
    } finally {
      await s.close();
    }
  });
});

describe("shutting down", () => {
  it("finishes requests in flight, refuses new ones with 503, closes streams and replicas", async () => {
    const s = await serveParity("shutdown", { queryTimeoutMs: 5000 });
    try {
      const url = `${s.server.url}/parity/v2/pipeline`;
      const open = await (await fetch(url, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ requests: [{ type: "execute", stmt: { sql: "BEGIN" } }] }),
      })).json();
      assert.equal(typeof open.baton, "string");
      const slow = fetch(url, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({
          requests: [{
            type: "execute",
            stmt: {
              sql:
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) FROM c",
            },
          }, { type: "close" }],
        }),
      }).then((r) => r.json());
      await new Promise((resolve) => setTimeout(resolve, 100));
      const closing = s.app.shutdown({ timeoutMs: 10_000 });
      const refused = await s.app.fetch(new Request(url, { method: "POST", headers: auth, body: "{}" }));
      assert.equal(refused.status, 503);
      assert.deepEqual(await refused.json(), {
        message: "The server is shutting down",
        code: "SHUTTING_DOWN",
      });
      assert.equal((await s.app.fetch(new Request("http://x/healthz"))).status, 503);
      const answered = await slow;
      assert.deepEqual(answered.results[0].response.result.rows, [[{ type: "integer", value: "3000000" }]]);
      await closing;
      assert.equal(s.replica.closed, true);
    } finally {
      await s.close();
    }
  });
});

describe("createFetchHandler()", () => {
  it("refuses a replica whose integers would come back as JavaScript numbers", async () => {
    const s = await serveParity("intmode");
    const numbers = await openReplica("parity", { store: s.store, pollIntervalMs: 0 });
    try {
      assert.throws(() => createApp({ databases: { parity: { replica: numbers, public: true } } }), {
        name: "TypeError",
        message: 'Cannot serve database "parity": open its replica with intMode "bigint", not "number", so ' +
          "integers reach clients exact and typed",
      });
    } finally {
      numbers.close();
      await s.close();
    }
  });

  it("opens the databases at the first request with the platform's environment, again after a failure", async () => {
    const s = await serveParity("edge");
    let opens = 0;
    const handler = createFetchHandler(async (env) => {
      opens++;
      if (opens === 1) throw new Error("store unreachable");
      return {
        databases: { parity: { replica: s.replica, tokens: [(env as { TOKEN: string }).TOKEN] } },
        closeReplicas: false,
      };
    });
    try {
      const ask = () =>
        handler.fetch(
          new Request("http://edge/v1/db/parity/query", {
            method: "POST",
            headers: auth,
            body: '{"sql":"SELECT 7 AS n"}',
          }),
          { TOKEN },
        );
      const failed = await ask();
      assert.equal(failed.status, 503);
      assert.deepEqual(await failed.json(), {
        message: "The databases could not be opened yet: retry shortly (the server's log says why)",
        code: "UNAVAILABLE",
      });
      const ok = await ask();
      assert.deepEqual((await ok.json()).rows, [{ n: 7 }]);
      await ask();
      assert.equal(opens, 2);
      await handler.shutdown();
      // Options createApp refuses: the replicas just opened are closed, not left polling.
      const extra = await openReplica("parity", { store: s.store, pollIntervalMs: 0, intMode: "bigint" });
      const refused = createFetchHandler(() =>
        Promise.resolve({ databases: { "bad name": { replica: extra } } })
      );
      const answer = await refused.fetch(new Request("http://edge/healthz"));
      assert.equal(answer.status, 503);
      assert.equal((await answer.json()).code, "UNAVAILABLE");
      assert.equal(extra.closed, true);
    } finally {
      await s.close();
    }
  });
});
