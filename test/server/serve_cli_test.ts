/**
 * `tessera serve` as users run it: a process with a config file, read by @libsql/client and curl-style
 * requests while the sqlite3 CLI writes the source and `tessera sync` publishes it; stopped by SIGTERM with
 * a request in flight. The same CLI, bundled for Node, serves through @hono/node-server.
 */

import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import { createClient } from "@libsql/client";
import { isDeno, ROOT, runScript } from "../_helpers/run.ts";
import { startInteractive } from "../_helpers/interactive.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

function sqlite3(db: string, sql: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "sqlite3",
      [db, sql],
      (error, stdout, stderr) => (error ? reject(new Error(stderr)) : resolve(stdout)),
    );
  });
}

describe("tessera serve", () => {
  let dir: string;
  let db: string;
  let store: string;
  let configPath: string;

  const sync = async () => {
    const result = await runScript("src/cli/main.ts", [
      "sync",
      db,
      "--store",
      store,
      "--name",
      "app",
      "--json",
    ]);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout.trim().split("\n").at(-1)!).sequence as number;
  };

  before(async () => {
    dir = await makeTempDir("serve-cli");
    db = join(dir, "app.db");
    store = join(dir, "store");
    await sqlite3(
      db,
      "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); " +
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500) INSERT INTO t SELECT x, 'v' || x FROM c;",
    );
    await sync();
    configPath = join(dir, "server.json");
    await writeFile(
      configPath,
      JSON.stringify({
        listen: { hostname: "127.0.0.1", port: 0 },
        store: `file://${store}`,
        databases: { app: { tokens: ["env:SERVE_TEST_TOKEN"], pollIntervalMs: 100 } },
      }),
    );
  });
  after(async () => await removeDir(dir));

  it("serves @libsql/client and curl from a config, follows syncs, and stops gracefully on SIGTERM", async () => {
    const server = startInteractive("src/cli/main.ts", ["serve", "-c", configPath, "--json"], {
      env: { SERVE_TEST_TOKEN: "cli-token" },
    });
    try {
      const line = await server.next(/\{"event":"listening".*\}\n/);
      const { url, databases, runtime } = JSON.parse(line.trim());
      assert.deepEqual(databases, ["app"]);
      assert.equal(runtime, isDeno ? "deno" : "bun");
      const client = createClient({ url: `${url}/app/`, authToken: "cli-token" });
      const count = async () => (await client.execute("SELECT count(*) AS n, max(v) AS m FROM t")).rows[0]!;
      assert.equal((await count()).n, Number(await sqlite3(db, "SELECT count(*) FROM t")));
      await sqlite3(db, "INSERT INTO t (v) VALUES ('from the sqlite3 CLI')");
      const sequence = await sync();
      const fresh = await fetch(`${url}/v1/db/app/query`, {
        method: "POST",
        headers: { authorization: "Bearer cli-token", "Tessera-Min-Sequence": String(sequence) },
        body: JSON.stringify({ sql: "SELECT v FROM t ORDER BY id DESC LIMIT 1" }),
      });
      assert.equal(fresh.headers.get("Tessera-Sequence"), String(sequence));
      assert.deepEqual((await fresh.json()).rows, [{ v: "from the sqlite3 CLI" }]);
      assert.equal((await count()).n, 501);
      const denied = await fetch(`${url}/v1/db/app/status`);
      assert.equal(denied.status, 401);
      await denied.body?.cancel();
      // A slow request is in flight when the signal comes: it is answered, then the process exits 0.
      const slow = client.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT count(*) AS n FROM c",
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
      server.signal("SIGTERM");
      assert.equal((await slow).rows[0]!.n, 2000000);
      assert.equal(await server.exited, 0, server.stderr());
      const rest = await server.next(/\{"event":"exit".*\}\n/);
      assert.match(rest, /"event":"stopping","signal":"SIGTERM"/);
      assert.match(rest, /"graceful":true/);
      client.close();
    } finally {
      await server.stop();
    }
  });

  it("exits 1 for a bad config and 1 or 3 for a database it cannot open, naming them; 2 for bad usage", async () => {
    const bad = await runScript("src/cli/main.ts", ["serve", "-c", '{"databases": {"app": {}}}']);
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(bad.stderr, /databases\.app has no store/);
    const missing = await runScript("src/cli/main.ts", [
      "serve",
      "--store",
      `file://${store}`,
      "--db",
      "ghost",
      "--public",
      "--port",
      "0",
    ]);
    assert.ok(missing.code === 1 || missing.code === 3, `${missing.code}: ${missing.stderr}`);
    assert.match(missing.stderr, /Cannot open database "ghost"/);
    const usage = await runScript("src/cli/main.ts", ["serve", "--store", `file://${store}`, "--db", "app"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--token TOKEN .* or --public/);
    const help = await runScript("src/cli/main.ts", ["serve", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: tessera serve -c CONFIG/);
  });

  it("runs under Node through @hono/node-server (the CLI bundled for Node)", async () => {
    const out = join(ROOT, ".tmp", `node-serve-${process.pid}`);
    await mkdir(out, { recursive: true });
    try {
      const bundle = join(out, "tessera.mjs");
      await new Promise<void>((resolve, reject) => {
        execFile(
          join(ROOT, "node_modules/.bin/esbuild"),
          [
            "test/server/_node_serve.ts",
            "--bundle",
            "--platform=node",
            "--format=esm",
            "--packages=external",
            `--outfile=${bundle}`,
          ],
          { cwd: ROOT },
          (error, _stdout, stderr) => (error ? reject(new Error(stderr)) : resolve()),
        );
      });
      const child = spawn("node", [
        bundle,
        "serve",
        "--store",
        `file://${store}`,
        "--db",
        "app",
        "--public",
        "--port",
        "0",
        "--json",
      ], {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (t: string) => (stdout += t));
      child.stderr.setEncoding("utf8").on("data", (t: string) => (stderr += t));
      const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
      try {
        const started = Date.now();
        while (!/"event":"listening"/.test(stdout)) {
          assert.ok(Date.now() - started < 30_000, `node did not start listening: ${stderr}`);
          assert.equal(child.exitCode, null, `node exited: ${stderr}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        const { url, runtime } = JSON.parse(stdout.split("\n")[0]!);
        assert.equal(runtime, "node");
        const client = createClient({ url: `${url}/app/` });
        assert.equal((await client.execute("SELECT count(*) AS n FROM t")).rows[0]!.n, 501);
        client.close();
      } finally {
        process.kill(child.pid!, "SIGTERM");
        assert.equal(await exited, 0, stderr);
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
