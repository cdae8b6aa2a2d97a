/**
 * examples/isolate.ts under Deno with the filesystem denied: no write permission at all, and read
 * permission for sqlite-wasm's binary only. It reads a store over HTTP (a static file server), keeps chunks
 * in memory only, serves @libsql/client and the JSON API, and follows new syncs.
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import { createClient } from "@libsql/client";
import { syncDatabase } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import { ROOT, sqliteCli } from "../_helpers/run.ts";
import { startStaticServer, type StaticServer } from "../_helpers/static_server.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

const DENO = join(ROOT, "node_modules/deno/deno");
const WASM = join(ROOT, "node_modules/@sqlite.org/sqlite-wasm/dist/sqlite3.wasm");

/** Bounds a wait only so that a broken isolate fails its test instead of hanging the suite. */
const MAX_TRIES = 600;

describe("examples/isolate.ts under Deno with the filesystem denied", () => {
  let dir: string;
  let db: string;
  let storeDir: string;
  let web: StaticServer;
  let child: ChildProcess | undefined;
  let stderr = "";

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
    child?.kill("SIGTERM");
    await web?.stop();
    await removeDir(dir);
  });

  it("serves queries and follows a new sync, reading no file but sqlite-wasm's and writing none", async () => {
    child = spawn(
      DENO,
      [
        "run",
        "--no-prompt",
        "--no-lock",
        `--allow-read=${WASM}`,
        "--allow-net=127.0.0.1",
        "--allow-env",
        "examples/isolate.ts",
      ],
      {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? "",
          DENO_DIR: process.env.DENO_DIR ?? join(dir, "deno-dir"),
          NO_COLOR: "1",
          TESSERA_STORE_URL: web.url,
          TESSERA_SOURCE: "app",
          PORT: "0",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stderr?.setEncoding("utf8").on("data", (text: string) => (stderr += text));
    const port = await new Promise<number>((resolve, reject) => {
      let out = "";
      child!.stdout?.setEncoding("utf8").on("data", (text: string) => {
        out += text;
        const match = /\{"listening":(\d+)\}/.exec(out);
        if (match) resolve(Number(match[1]));
      });
      child!.on("close", (code) => reject(new Error(`the isolate exited with ${code}: ${stderr}`)));
    });
    const base = `http://127.0.0.1:${port}`;

    const client = createClient({ url: base });
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
      body: JSON.stringify({ sql: "SELECT v FROM t WHERE id = 3001" }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual((await response.json()).rows, [{ v: "row 03001" }]);
    client.close();

    // Deno refused nothing: the isolate never asked for a file beyond sqlite-wasm's binary.
    assert.doesNotMatch(stderr, /NotCapable|Requires (read|write) access|PermissionDenied/);
  });
});
