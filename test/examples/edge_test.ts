import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { handler } from "../../examples/edge.ts";
import { openReplica } from "../../src/replica/open.ts";
import type { Replica } from "../../src/replica/replica.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import { startInteractive } from "../_helpers/interactive.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

/** Every file of `dir` with its bytes, to prove a request wrote nothing. */
async function files(dir: string): Promise<Map<string, string>> {
  const all = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    all.set(path, (await readFile(path)).toString("base64"));
  }
  return all;
}

describe("examples/edge.ts", () => {
  let dir: string;
  let db: string;
  let store: string;
  let replica: Replica;
  let answer: (request: Request) => Promise<Response>;
  const sync = async () =>
    await syncDatabase(db, {
      stores: [new LocalStore(store)],
      hostname: "edge-host",
      spoolDir: join(dir, "spool"),
    });
  const get = async (path: string) => {
    const response = await answer(new Request(`http://edge.test${path}`));
    return {
      status: response.status,
      type: response.headers.get("content-type"),
      body: await response.json(),
    };
  };

  before(async () => {
    dir = await makeTempDir("edge");
    db = join(dir, "app.db");
    store = join(dir, "store");
    const client = createClient({ url: `file:${db}` });
    await client.executeMultiple(`
      CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, token BLOB, balance INTEGER);
      INSERT INTO users VALUES (1, 'ada', x'cafe', 9007199254740993);
      INSERT INTO users VALUES (2, 'bob', NULL, -5);
    `);
    client.close();
    await sync();
    replica = await openReplica(`tessera://edge-host${db}`, {
      store: new LocalStore(store),
      intMode: "bigint",
      pollIntervalMs: 0,
    });
    answer = handler(replica);
  });
  after(async () => {
    replica?.close();
    await removeDir(dir);
  });

  it("GET /query answers the rows as JSON: exact big integers, base64 blobs, NULL", async () => {
    const got = await get("/query?sql=" + encodeURIComponent("SELECT * FROM users ORDER BY id"));
    assert.equal(got.status, 200);
    assert.equal(got.type, "application/json; charset=utf-8");
    assert.deepEqual(got.body, {
      columns: ["id", "name", "token", "balance"],
      rows: [
        { id: 1, name: "ada", token: "yv4=", balance: "9007199254740993" },
        { id: 2, name: "bob", token: null, balance: -5 },
      ],
      sequence: 1,
    });
    const bound = await get(
      "/query?sql=" + encodeURIComponent("SELECT name FROM users WHERE id = ?") + "&arg=2",
    );
    assert.deepEqual(bound.body.rows, [{ name: "bob" }]);
  });

  it("answers an SQL error, a write included, with 400 and SQLite's message, and writes nothing", async () => {
    const before = await files(store);
    const bad = await get("/query?sql=" + encodeURIComponent("SELECT * FROM nowhere"));
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, {
      error: { code: "SQLITE_ERROR", message: "SQLITE_ERROR: no such table: nowhere" },
    });
    const write = await get("/query?sql=" + encodeURIComponent("DELETE FROM users"));
    assert.equal(write.status, 400);
    assert.deepEqual(write.body, {
      error: { code: "SQLITE_READONLY", message: "SQLITE_READONLY: attempt to write a readonly database" },
    });
    assert.deepEqual(await files(store), before);
    const missing = await get("/query");
    assert.equal(missing.status, 400);
    assert.match(missing.body.error.message, /Give the SQL to run/);
    assert.equal((await get("/elsewhere")).status, 404);
    const post = await answer(new Request("http://edge.test/query?sql=SELECT+1", { method: "POST" }));
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
  });

  it("GET /status answers the replica's status", async () => {
    const got = await get("/status");
    assert.equal(got.status, 200);
    assert.equal(got.body.sequence, 1);
    assert.equal(got.body.engine, "wasm");
    assert.equal(got.body.follows, true);
    assert.match(got.body.database, /^[0-9a-f]{4}-edge-host%3A/);
    assert.deepEqual(got.body, JSON.parse(JSON.stringify({ ...replica.status(), lagMs: got.body.lagMs })));
  });

  it("runs as a server from TESSERA_SOURCE and TESSERA_STORE, and follows new snapshots", async () => {
    const server = startInteractive("examples/edge.ts", [], {
      env: {
        TESSERA_SOURCE: `tessera://edge-host${db}`,
        TESSERA_STORE: store,
        TESSERA_CONFIG: "",
        TESSERA_POLL_MS: "50",
        PORT: "0",
        HOST: "127.0.0.1",
      },
    });
    try {
      const line = await server.next(/listening on (http:\/\/127\.0\.0\.1:\d+)\/ \(.*\)\n/);
      const base = /listening on (\S+)\//.exec(line)?.[1] as string;
      const query = async (sql: string) => {
        const response = await fetch(`${base}/query?sql=${encodeURIComponent(sql)}`);
        return { status: response.status, body: await response.json() };
      };
      assert.deepEqual(await query("SELECT count(*) AS n FROM users"), {
        status: 200,
        body: { columns: ["n"], rows: [{ n: 2 }], sequence: 1 },
      });
      const error = await query("SELEC 1");
      assert.equal(error.status, 400);
      assert.deepEqual(error.body, {
        error: { code: "SQLITE_ERROR", message: 'SQLITE_ERROR: near "SELEC": syntax error' },
      });

      const client = createClient({ url: `file:${db}` });
      await client.execute("INSERT INTO users (id, name) VALUES (3, 'cy')");
      client.close();
      assert.equal((await sync()).sequence, 2);
      // The poller finds sequence 2 in the background; the next request after that sees it.
      // (Bounded only so that a broken poller fails the test instead of hanging the suite.)
      for (let tries = 0;; tries++) {
        const status = await (await fetch(`${base}/status`)).json();
        assert.equal(status.lastError, undefined);
        if (status.newestSequence === 2) break;
        assert.ok(tries < 1200, `the server never fetched sequence 2: ${JSON.stringify(status)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.deepEqual(await query("SELECT name FROM users WHERE id = 3"), {
        status: 200,
        body: { columns: ["name"], rows: [{ name: "cy" }], sequence: 2 },
      });
      assert.equal(server.stderr(), "");
    } finally {
      await server.stop();
    }
  });
});
