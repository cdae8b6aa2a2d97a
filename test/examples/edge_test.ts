import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient, LibsqlError } from "@libsql/client";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import edgeDefault, { handler } from "../../examples/edge.ts";
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

/** Bounds a wait only so that a broken poller fails its test instead of hanging the suite. */
const MAX_TRIES = 1200;

describe("examples/edge.ts", () => {
  let dir: string;
  let db: string;
  let store: string;
  const source = () => `tessera://edge-host${db}`;
  const sync = async () =>
    await syncDatabase(db, {
      stores: [new LocalStore(store)],
      hostname: "edge-host",
      spoolDir: join(dir, "spool"),
    });

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
  });
  after(async () => {
    await handler.shutdown();
    await removeDir(dir);
  });

  describe("the exported handler", () => {
    // The environment a platform hands `fetch`; it overrides the test process's own.
    const env = () => ({
      TESSERA_SOURCE: source(),
      TESSERA_STORE: store,
      TESSERA_CONFIG: "",
      TESSERA_POLL_MS: "0",
      TESSERA_DB_NAME: "app",
      TESSERA_TOKEN: "s3cret",
    });
    const post = async (path: string, body: unknown, token = "s3cret") => {
      const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
      const response = await handler.fetch(
        new Request(`http://edge.test${path}`, { method: "POST", headers, body: JSON.stringify(body) }),
        env(),
      );
      return { status: response.status, headers: response.headers, body: await response.json() };
    };

    it("is also the default export", () => {
      assert.equal(edgeDefault, handler);
    });

    it("answers 503 UNAVAILABLE while the environment names no database, and opens once it does", async () => {
      const response = await handler.fetch(new Request("http://edge.test/healthz"), {
        ...env(),
        TESSERA_SOURCE: "",
      });
      assert.equal(response.status, 503);
      assert.deepEqual(await response.json(), {
        message: "The databases could not be opened yet: retry shortly (the server's log says why)",
        code: "UNAVAILABLE",
      });
      const healthy = await handler.fetch(new Request("http://edge.test/healthz"), env());
      assert.equal(healthy.status, 200);
      assert.deepEqual(await healthy.json(), { ok: true, databases: 1, closed: 0 });
    });

    it("answers the JSON API: exact big integers, base64 blobs, NULL, and the snapshot it read", async () => {
      const got = await post("/v1/db/app/query", { sql: "SELECT * FROM users ORDER BY id" });
      assert.equal(got.status, 200);
      assert.equal(got.headers.get("content-type"), "application/json");
      assert.equal(got.headers.get("tessera-sequence"), "1");
      assert.deepEqual(got.body, {
        columns: ["id", "name", "token", "balance"],
        rows: [
          { id: 1, name: "ada", token: "yv4=", balance: "9007199254740993" },
          { id: 2, name: "bob", token: null, balance: -5 },
        ],
        sequence: 1,
      });
      const bound = await post("/v1/db/app/query", {
        sql: "SELECT name, ? AS big, hex(?) AS bytes FROM users WHERE id = ?",
        args: [{ integer: "-9223372036854775808" }, { base64: "AP8Q" }, 2],
      });
      assert.deepEqual(bound.body.rows, [{ name: "bob", big: "-9223372036854775808", bytes: "00FF10" }]);
    });

    it("refuses a write with 400 SQLITE_READONLY and writes nothing to the store", async () => {
      const before = await files(store);
      const write = await post("/v1/db/app/query", { sql: "DELETE FROM users" });
      assert.equal(write.status, 400);
      assert.deepEqual(write.body, {
        message: "SQLITE_READONLY: attempt to write a readonly database",
        code: "SQLITE_READONLY",
      });
      const bad = await post("/v1/db/app/query", { sql: "SELECT * FROM nowhere" });
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.body, { message: "SQLITE_ERROR: no such table: nowhere", code: "SQLITE_ERROR" });
      assert.deepEqual(await files(store), before);
      const count = await post("/v1/db/app/query", { sql: "SELECT count(*) AS n FROM users" });
      assert.deepEqual(count.body.rows, [{ n: 2 }]);
    });

    it("needs TESSERA_TOKEN as a bearer token, and serves the database only under TESSERA_DB_NAME", async () => {
      const sql = { sql: "SELECT 1" };
      assert.equal((await post("/v1/db/app/query", sql, "")).status, 401);
      assert.equal((await post("/v1/db/app/query", sql, "wrong")).body.code, "UNAUTHORIZED");
      assert.equal((await post("/v1/db/db/query", sql)).status, 403);
    });

    it("GET /v1/db/NAME/status answers the replica's status", async () => {
      const response = await handler.fetch(
        new Request("http://edge.test/v1/db/app/status", { headers: { authorization: "Bearer s3cret" } }),
        env(),
      );
      assert.equal(response.status, 200);
      const status = await response.json();
      assert.equal(status.name, "app");
      assert.equal(status.sequence, 1);
      assert.equal(status.follows, true);
      assert.match(status.database, /^[0-9a-f]{4}-edge-host%3A/);
    });
  });

  describe("the program", () => {
    const start = (extra: Record<string, string>) =>
      startInteractive("examples/edge.ts", [], {
        env: {
          TESSERA_SOURCE: source(),
          TESSERA_STORE: store,
          TESSERA_CONFIG: "",
          TESSERA_POLL_MS: "50",
          TESSERA_DB_NAME: "app",
          TESSERA_TOKEN: "",
          PORT: "0",
          HOST: "127.0.0.1",
          ...extra,
        },
      });

    it("serves @libsql/client and the JSON API, follows new snapshots, warns that it is public, and stops on SIGTERM", async () => {
      const server = start({});
      try {
        const line = await server.next(/listening on http:\/\/127\.0\.0\.1:\d+\/ \(app\)\n/);
        const base = /listening on (\S+)\//.exec(line)?.[1] as string;
        assert.match(server.stderr(), /WARNING: TESSERA_TOKEN is not set, so database "app" is PUBLIC/);

        // The default database, as a libSQL client reaches it: POST /v2/pipeline.
        const client = createClient({ url: base + "/", intMode: "bigint" });
        const ada = await client.execute("SELECT name, token, balance FROM users WHERE id = 1");
        assert.equal(ada.rows[0]?.name, "ada");
        assert.deepEqual([...new Uint8Array(ada.rows[0]?.token as ArrayBuffer)], [0xca, 0xfe]);
        assert.equal(ada.rows[0]?.balance, 9007199254740993n);
        const before = await files(store);
        await assert.rejects(
          client.execute("INSERT INTO users (id, name) VALUES (9, 'eve')"),
          (error) => error instanceof LibsqlError && error.code === "SQLITE_READONLY",
        );
        assert.deepEqual(await files(store), before);

        const query = async (sql: string) => {
          const response = await fetch(`${base}/v1/db/app/query`, {
            method: "POST",
            body: JSON.stringify({ sql }),
          });
          return { status: response.status, body: await response.json() };
        };
        assert.deepEqual(await query("SELECT count(*) AS n FROM users"), {
          status: 200,
          body: { columns: ["n"], rows: [{ n: 2 }], sequence: 1 },
        });

        const writer = createClient({ url: `file:${db}` });
        await writer.execute("INSERT INTO users (id, name) VALUES (3, 'cy')");
        writer.close();
        const { sequence } = await sync();
        assert.equal(sequence, 2);
        // The poller finds the new snapshot in the background; the next request after that reads it.
        for (let tries = 0;; tries++) {
          const status = await (await fetch(`${base}/v1/db/app/status`)).json();
          assert.equal(status.lastError, undefined);
          if (status.newestSequence === sequence) break;
          assert.ok(tries < MAX_TRIES, `the server never fetched sequence 2: ${JSON.stringify(status)}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.deepEqual(await query("SELECT name FROM users WHERE id = 3"), {
          status: 200,
          body: { columns: ["name"], rows: [{ name: "cy" }], sequence: 2 },
        });
        assert.equal((await client.execute("SELECT name FROM users WHERE id = 3")).rows[0]?.name, "cy");
        client.close();

        server.signal("SIGTERM");
        assert.equal(await server.exited, 0);
        await server.next(/SIGTERM: answering the requests in flight, then exiting\n/);
      } finally {
        await server.stop();
      }
    });

    it("with TESSERA_TOKEN, answers 401 to a request without it, and stops on SIGINT", async () => {
      const server = start({ TESSERA_TOKEN: "s3cret" });
      try {
        const line = await server.next(/listening on http:\/\/127\.0\.0\.1:\d+\/ \(app\)\n/);
        const base = /listening on (\S+)\//.exec(line)?.[1] as string;
        const sql = JSON.stringify({ sql: "SELECT count(*) AS n FROM users" });
        const anonymous = await fetch(`${base}/v1/db/app/query`, { method: "POST", body: sql });
        assert.equal(anonymous.status, 401);
        assert.equal((await anonymous.json()).code, "UNAUTHORIZED");
        const client = createClient({ url: base + "/" });
        await assert.rejects(
          client.execute("SELECT 1"),
          (error) => error instanceof LibsqlError && error.code === "UNAUTHORIZED",
        );
        client.close();
        const reader = createClient({ url: base + "/", authToken: "s3cret" });
        assert.equal((await reader.execute("SELECT name FROM users WHERE id = 1")).rows[0]?.name, "ada");
        reader.close();
        assert.equal(server.stderr(), "");

        server.signal("SIGINT");
        assert.equal(await server.exited, 0);
      } finally {
        await server.stop();
      }
    });

    it("exits 1 at startup, naming the variable, when the environment names no database", async () => {
      const server = start({ TESSERA_SOURCE: "" });
      assert.equal(await server.exited, 1);
      assert.equal(
        server.stderr(),
        "tessera: the databases could not be opened: Set TESSERA_SOURCE to the database to serve, e.g. " +
          "tessera://db1/srv/app.db\n" +
          "edge: The databases could not be opened yet: retry shortly (the server's log says why)\n",
      );
    });
  });
});
