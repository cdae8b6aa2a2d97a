/**
 * examples/isolate.ts under Deno with the filesystem denied: no write permission at all, and read
 * permission for sqlite-wasm's binary only. It reads a store over HTTP (a static file server), keeps chunks
 * in memory only, serves @libsql/client and the JSON API to token holders, and follows new syncs. It
 * refuses to serve a database publicly unless told to with TESSERA_PUBLIC=1.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import { createClient } from "@libsql/client";
import isolate from "../../examples/isolate.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import { type Interactive, startInteractive } from "../_helpers/interactive.ts";
import { ROOT, sqliteCli } from "../_helpers/run.ts";
import { startStaticServer, type StaticServer } from "../_helpers/static_server.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

const TOKEN = "reader-token";
const WASM = join(ROOT, "node_modules/@sqlite.org/sqlite-wasm/dist/sqlite3.wasm");

/** Bounds a wait only so that a broken isolate fails its test instead of hanging the suite. */
const MAX_TRIES = 600;

describe("examples/isolate.ts", () => {
  let dir: string;
  let db: string;
  let storeDir: string;
  let web: StaticServer;
  let child: Interactive | undefined;

  const startIsolate = (env: Record<string, string>) =>
    startInteractive("examples/isolate.ts", [], {
      denoFlags: ["--no-prompt", "--no-lock", `--allow-read=${WASM}`, "--allow-net=127.0.0.1", "--allow-env"],
      inheritEnv: false,
      env: {
        PATH: process.env.PATH ?? "",
        DENO_DIR: process.env.DENO_DIR ?? join(dir, "deno-dir"),
        PORT: "0",
        ...env,
      },
    });

  const sync = () =>
    syncDatabase(db, {
      stores: [new LocalStore(storeDir)],
      name: "app",
      hostname: "isolate-host",
      spoolDir: join(dir, "spool"),
    });

  before(async () => {
    dir = await makeTempDir("isolate");
    db = join(dir, "app.db");
    storeDir = join(dir, "store");
    await sqliteCli(
      db,
      "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); " +
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) " +
        "INSERT INTO t SELECT i, printf('row %05d', i) FROM n;",
    );
    await sync();
    web = await startStaticServer(storeDir);
  });

  after(async () => {
    await child?.stop();
    await web?.stop();
    await removeDir(dir);
  });

  it("serves token holders and follows a new sync under Deno with the filesystem denied, reading no file but sqlite-wasm's", async () => {
    child = startIsolate({ TESSERA_STORE_URL: web.url, TESSERA_SOURCE: "app", TESSERA_TOKEN: TOKEN });
    const { listening: port } = JSON.parse((await child.next(/\{"listening":\d+\}/)).trim());
    const base = `http://127.0.0.1:${port}`;

    const anonymous = await fetch(`${base}/v1/db/db/query`, { method: "POST", body: '{"sql": "SELECT 1"}' });
    assert.equal(anonymous.status, 401, "a reader without the token is refused");
    await anonymous.body?.cancel();

    const client = createClient({ url: base, authToken: TOKEN });
    const first = await client.execute("SELECT count(*) AS n, max(v) AS top FROM t");
    assert.deepEqual({ ...first.rows[0] }, { n: 3000, top: "row 03000" });

    await sqliteCli(db, "INSERT INTO t VALUES (3001, 'row 03001');");
    await sync();
    let n = 0;
    for (let tries = 0; n !== 3001 && tries < MAX_TRIES; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      n = Number((await client.execute("SELECT count(*) AS n FROM t")).rows[0]?.n);
    }
    assert.equal(n, 3001, "the isolate follows the new snapshot");

    const response = await fetch(`${base}/v1/db/db/query`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ sql: "SELECT v FROM t WHERE id = 3001" }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual((await response.json()).rows, [{ v: "row 03001" }]);
    client.close();

    // Deno refused nothing: the isolate never asked for a file beyond sqlite-wasm's binary.
    assert.doesNotMatch(child.stderr(), /NotCapable|Requires (read|write) access|PermissionDenied/);
  });

  it("refuses to start with an empty TESSERA_TOKEN, in one line naming it", async () => {
    const refused = startIsolate({ TESSERA_STORE_URL: web.url, TESSERA_SOURCE: "app", TESSERA_TOKEN: "" });
    assert.equal(await refused.exited, 1);
    assert.equal(refused.stdout(), "");
    assert.equal(
      refused.stderr(),
      "isolate: TESSERA_TOKEN is set but empty: give it the bearer token readers send (check the secret it " +
        "comes from), or unset it and set TESSERA_PUBLIC=1 to serve the database to anyone\n",
    );
  });

  it("answers 503 and logs why when the token is empty, missing, or contradicted, and serves with TESSERA_PUBLIC=1", async () => {
    const base = { TESSERA_STORE_URL: web.url, TESSERA_SOURCE: "app" };
    const query = () =>
      new Request("http://edge/v1/db/db/query", {
        method: "POST",
        body: JSON.stringify({ sql: "SELECT v FROM t WHERE id = 1" }),
      });
    const cases: [Record<string, string>, RegExp][] = [
      [
        { TESSERA_TOKEN: "" },
        /^tessera: the databases could not be opened: TESSERA_TOKEN is set but empty: /,
      ],
      [{ TESSERA_TOKEN: " \n" }, /: TESSERA_TOKEN is set but empty: /],
      [{ TESSERA_TOKEN: "t0ken\n" }, /: TESSERA_TOKEN has spaces or line breaks around it: remove them$/],
      [{}, /: Set TESSERA_TOKEN to the bearer token readers send, or TESSERA_PUBLIC=1 to serve /],
      [
        { TESSERA_PUBLIC: "true" },
        /: TESSERA_PUBLIC must be 1 \(serve the database to anyone\) or unset, not "true"$/,
      ],
      [
        { TESSERA_TOKEN: "t0ken", TESSERA_PUBLIC: "1" },
        /: TESSERA_TOKEN and TESSERA_PUBLIC=1 are both set: unset one$/,
      ],
    ];
    const logged: string[] = [];
    const log = console.error;
    console.error = (...args: unknown[]) => void logged.push(args.map(String).join(" "));
    try {
      for (const [env, reason] of cases) {
        logged.length = 0;
        const response = await isolate.fetch(query(), { ...base, ...env });
        assert.equal(response.status, 503, JSON.stringify(env));
        assert.equal((await response.json()).code, "UNAVAILABLE");
        assert.equal(logged.length, 1, JSON.stringify(logged));
        assert.match(logged[0]!, reason);
      }
    } finally {
      console.error = log;
    }

    try {
      const response = await isolate.fetch(query(), { ...base, TESSERA_PUBLIC: "1" });
      assert.equal(response.status, 200);
      assert.deepEqual((await response.json()).rows, [{ v: "row 00001" }]);
    } finally {
      await isolate.shutdown({ timeoutMs: 0 });
    }
  });
});
