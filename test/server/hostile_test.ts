/**
 * Requests meant to hurt the server, each answered with an error of its own while the server goes on
 * serving: arguments that crash libsql, error messages that echo huge names, streams opened all at once past
 * the limit, bodies that never arrive, comments around transaction words, and a transaction's own snapshot
 * in its pragmas.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { parseServerConfig } from "../../src/server/config.ts";
import { type Json, pipeline, type Served, serveParity, TOKEN } from "./_fixture.ts";

const stmt = (sql: string, args: unknown[] = [], named: unknown[] = []) => ({
  sql,
  args,
  named_args: named,
  want_rows: true,
});
const execute = (sql: string, args: unknown[] = [], named: unknown[] = []) => ({
  type: "execute",
  stmt: stmt(sql, args, named),
});
const close = { type: "close" };
const autocommit = { type: "get_autocommit" };

for (const engine of ["native", "wasm"] as const) {
  describe(`hostile requests (${engine})`, () => {
    let s: Served;
    let url: string;

    before(async () => {
      s = await serveParity(`hostile-${engine}`, { engine }, {
        limits: { maxResultBytes: 200_000, bodyTimeoutMs: 300 },
        streams: { maxStreams: 3 },
      });
      url = `${s.server.url}/parity/v2/pipeline`;
    });
    after(async () => await s?.close());

    async function stillServing(): Promise<void> {
      const ok = await pipeline(url, { requests: [execute("SELECT count(*) FROM kinds"), close] });
      assert.equal(ok.status, 200);
      assert.deepEqual(ok.body.results[0].response.result.rows, [[{ type: "integer", value: "9" }]]);
    }

    it("answers named arguments for a nameless ? with ARGS_INVALID (libsql would abort the process)", async () => {
      const got = await pipeline(url, {
        requests: [
          execute("SELECT ?", [], [{ name: "x", value: { type: "integer", value: "1" } }]),
          execute("SELECT ?, :x", [], [{ name: "x", value: { type: "integer", value: "1" } }]),
          close,
        ],
      });
      for (const r of got.body.results.slice(0, 2)) {
        assert.deepEqual(r.error, {
          message: "Cannot bind named arguments: parameter 1 has no name; pass the arguments as an array",
          code: "ARGS_INVALID",
        });
      }
      const api = await fetch(`${s.server.url}/v1/db/parity/query`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ sql: "SELECT ?", args: { x: 1 } }),
      });
      assert.equal(api.status, 400);
      assert.equal((await api.json()).code, "ARGS_INVALID");
      const infinite = await fetch(`${s.server.url}/v1/db/parity/query`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
        body: '{"sql": "SELECT ?", "args": [1e400]}',
      });
      assert.equal(infinite.status, 400);
      assert.deepEqual(await infinite.json(), {
        message: "args[0] is not a finite number",
        code: "BAD_REQUEST",
      });
      await stillServing();
    });

    it("counts error messages against the result budget and shortens them", async () => {
      const name = "x".repeat(50_000);
      const requests: unknown[] = [{ type: "store_sql", sql_id: 1, sql: `SELECT * FROM "${name}"` }];
      for (let i = 0; i < 250; i++) requests.push({ type: "execute", stmt: { sql_id: 1, args: [] } });
      requests.push(close);
      const response = await fetch(url, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify({ requests }),
      });
      const text = await response.text();
      assert.ok(text.length < 250_000, `the answer is ${text.length} characters`);
      const results = JSON.parse(text).results as Json[];
      assert.equal(results[1].error.code, "SQLITE_ERROR");
      assert.ok(results[1].error.message.length <= 1001);
      assert.ok(results[1].error.message.startsWith("no such table: xxx"));
      assert.ok(results[1].error.message.endsWith("…"));
      assert.equal(results[250].error.code, "RESULT_TOO_LARGE", "the budget ran out before the last");
      await stillServing();
    });

    it("holds no more streams than streams.max when pipelines open them all at once", async () => {
      const opened = await Promise.all(
        Array.from(
          { length: 12 },
          () => pipeline(url, { requests: [execute("BEGIN"), execute("SELECT 1")] }),
        ),
      );
      const held = opened.filter((r) => r.status === 200);
      const refused = opened.filter((r) => r.status === 503);
      assert.equal(held.length, 3);
      assert.equal(refused.length, 9);
      for (const r of refused) assert.equal(r.body.code, "TOO_MANY_STREAMS");
      // The held ones keep their place across requests, then give it back.
      for (const r of held) {
        const next = await pipeline(url, { baton: r.body.baton, requests: [execute("SELECT 2"), close] });
        assert.equal(next.status, 200);
      }
      await stillServing();
    });

    it("answers 408 to a body that does not arrive in time", async () => {
      let cancel!: () => void;
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"requests": ['));
          cancel = () => {
            try {
              controller.close();
            } catch {
              // Bun closes the stream once the server answered.
            }
          };
        },
      });
      const response = await fetch(url, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body,
        duplex: "half",
      } as RequestInit);
      assert.equal(response.status, 408);
      assert.deepEqual(await response.json(), {
        message: "The request body took longer than 300 ms to arrive: send it whole, at once",
        code: "REQUEST_TIMEOUT",
      });
      cancel();
      await stillServing();
    });

    it("follows transaction words with comments around them, as SQLite reads them", async () => {
      const got = await pipeline(url, {
        requests: [
          execute("BEGIN -- a comment"),
          autocommit,
          execute("COMMIT /* done */"),
          autocommit,
          execute("BEGIN/**/TRANSACTION"),
          autocommit,
          execute("END"),
          execute("SAVEPOINT a -- outer"),
          autocommit,
          execute("RELEASE a -- done"),
          autocommit,
          execute("PRAGMA foreign_keys = on -- migrate sends these"),
          { type: "sequence", sql: "CREATE TRIGGER t AFTER INSERT ON kinds BEGIN SELECT 1; SELECT 2; END;" },
          close,
        ],
      });
      const r = got.body.results;
      assert.deepEqual(
        [1, 3, 5, 8, 10].map((i) => r[i].response.is_autocommit),
        [false, true, false, false, true],
      );
      assert.equal(r[11].type, "ok");
      assert.equal(r[12].error.code, "SQLITE_READONLY", "a trigger's body is not cut at its semicolons");
    });

    it("names a transaction's snapshot in its freshness pragmas while the replica moves on", async () => {
      const open = await pipeline(url, {
        requests: [execute("BEGIN"), execute("PRAGMA tessera_snapshot_sequence")],
      });
      const pinned = open.body.results[1].response.result.rows[0][0].value;
      assert.equal(pinned, String(s.replica.sequence));
      const { execFileSync } = await import("node:child_process");
      execFileSync("sqlite3", [s.path, "INSERT INTO docs (body) VALUES ('moved on')"]);
      await s.sync();
      await s.replica.refresh(1);
      assert.ok(s.replica.sequence > Number(pinned));
      const inside = await pipeline(url, {
        baton: open.body.baton,
        requests: [
          execute("PRAGMA tessera_snapshot_sequence"),
          execute("ROLLBACK"),
          execute(
            "PRAGMA tessera_snapshot_sequence",
          ),
          close,
        ],
      });
      const r = inside.body.results;
      assert.equal(r[0].response.result.rows[0][0].value, pinned);
      assert.equal(r[2].response.result.rows[0][0].value, String(s.replica.sequence));
    });
  });
}

describe("a server config's limits", () => {
  it("refuses a limit past 1 GiB, which SQLite's C int would wrap", () => {
    assert.throws(
      () =>
        parseServerConfig(
          {
            store: "/tmp/none",
            databases: { app: { public: true } },
            limits: { maxResultBytes: 2 ** 32 + 10 },
          },
          'file "server.json"',
          {},
        ),
      /limits\.maxResultBytes is 4294967306; the most it can be is 1073741824 \(1 GiB\)/,
    );
  });
});
