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
import { isDeno, ROOT, runScript, sqliteCli } from "../_helpers/run.ts";
import { startInteractive } from "../_helpers/interactive.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

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
    await sqliteCli(
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
      assert.equal((await count()).n, Number(await sqliteCli(db, "SELECT count(*) FROM t")));
      await sqliteCli(db, "INSERT INTO t (v) VALUES ('from the sqlite3 CLI')");
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

  it("exits on SIGTERM within its bound while a client never finishes sending its body", async () => {
    const config = join(dir, "slow-body.json");
    await writeFile(
      config,
      JSON.stringify({
        listen: { hostname: "127.0.0.1", port: 0 },
        store: `file://${store}`,
        databases: { app: { tokens: ["env:SERVE_TEST_TOKEN"] } },
        shutdownTimeoutMs: 1000,
      }),
    );
    const server = startInteractive("src/cli/main.ts", ["serve", "-c", config, "--json"], {
      env: { SERVE_TEST_TOKEN: "cli-token" },
    });
    const { connect } = await import("node:net");
    let socket: ReturnType<typeof connect> | undefined;
    try {
      const { url } = JSON.parse((await server.next(/\{"event":"listening".*\}\n/)).trim());
      const { hostname, port } = new URL(url);
      socket = connect(Number(port), hostname);
      let answer = "";
      socket.on("data", (chunk) => (answer += chunk.toString()));
      socket.on("error", () => {});
      await new Promise((resolve) => socket!.once("connect", resolve));
      // The headers and one byte of a 100-byte body, then nothing.
      socket.write(
        "POST /app/v2/pipeline HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer cli-token\r\n" +
          "Content-Length: 100\r\n\r\n{",
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      server.signal("SIGTERM");
      assert.equal(await server.exited, 0, server.stderr());
      assert.match(answer, /^HTTP\/1\.1 503/, "the waiting request is told the server is stopping");
      assert.match(answer, /"code":"SHUTTING_DOWN"/);
    } finally {
      socket?.destroy();
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
    assert.match(help.stdout, /--metrics-token TOKEN/);
    assert.match(help.stdout, /--public-metrics/);
  });

  it("refuses a --db that is not a name and a token no header can carry with 2, a config with them with 1", async () => {
    const serve = (args: string[], env: Record<string, string> = {}) =>
      runScript("src/cli/main.ts", ["serve", ...args, "--port", "0"], { env });
    const rule = /a name is 1-128 letters, digits, "_", "-" or "\.", and none of "healthz", "metrics"/;
    const path = await serve(["--store", `file://${store}`, "--db", "bad/name", "--public"]);
    assert.equal(path.code, 2, path.stderr);
    assert.match(path.stderr, /--db "bad\/name" is not a database name/);
    assert.match(path.stderr, rule);
    assert.match(path.stderr, /Run "tessera --help" for usage/);
    const reserved = await serve([
      "--store",
      `file://${store}`,
      "--db",
      "app",
      "--db",
      "metrics",
      "--public",
    ]);
    assert.equal(reserved.code, 2, reserved.stderr);
    assert.match(reserved.stderr, /--db "metrics" is not a database name/);

    const tokens: [string[], Record<string, string>, RegExp][] = [
      [["--token", "secret words"], {}, /serve: --token contains whitespace/],
      [["--token", "ok-token", "--token", ""], {}, /serve: --token #2 is empty/],
      [
        ["--token", "env:SERVE_SPACED"],
        { SERVE_SPACED: "secret\tword" },
        /--token names the environment variable SERVE_SPACED, whose value contains whitespace/,
      ],
      [
        ["--token", "ok-token", "--metrics-token", "secret metrics"],
        {},
        /serve: --metrics-token contains whitespace/,
      ],
    ];
    for (const [args, env, message] of tokens) {
      const got = await serve(["--store", `file://${store}`, "--db", "app", ...args], env);
      assert.equal(got.code, 2, got.stderr);
      assert.match(got.stderr, message);
      assert.doesNotMatch(got.stderr, /secret/, "the token is never shown");
    }
    const both = await serve([
      "--store",
      `file://${store}`,
      "--db",
      "app",
      "--public",
      "--metrics-token",
      "m",
      "--public-metrics",
    ]);
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /give --metrics-token TOKEN or --public-metrics, not both/);

    const badName = join(dir, "bad-name.json");
    await writeFile(
      badName,
      JSON.stringify({ store: `file://${store}`, databases: { "bad/name": { public: true } } }),
    );
    const config = await serve(["-c", badName]);
    assert.equal(config.code, 1, config.stderr);
    assert.ok(config.stderr.includes(`Cannot load the server config (file "${badName}")`), config.stderr);
    assert.match(config.stderr, /databases has the key "bad\/name", which is not a database name/);
    assert.match(config.stderr, rule);
    assert.match(config.stderr, /\[CONFIG_INVALID\]/);
    const badToken = join(dir, "bad-token.json");
    await writeFile(
      badToken,
      JSON.stringify({ store: `file://${store}`, databases: { app: { tokens: ["secret words"] } } }),
    );
    const token = await serve(["-c", badToken]);
    assert.equal(token.code, 1, token.stderr);
    assert.match(token.stderr, /databases\.app\.tokens\[0\] contains whitespace/);
    assert.doesNotMatch(token.stderr, /secret/);
  });

  it("closes /metrics to a database's token, and opens it with --metrics-token or --public-metrics", async () => {
    const metricsOf = async (args: string[]) => {
      const server = startInteractive("src/cli/main.ts", [
        "serve",
        "--store",
        `file://${store}`,
        "--db",
        "app",
        "--token",
        "env:SERVE_APP_TOKEN",
        "--port",
        "0",
        "--json",
        ...args,
      ], { env: { SERVE_APP_TOKEN: "app-token", SERVE_METRICS_TOKEN: "metrics-token" } });
      try {
        const { url } = JSON.parse((await server.next(/\{"event":"listening".*\}\n/)).trim());
        const status = async (token?: string) => {
          const response = await fetch(`${url}/metrics`, {
            headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
          });
          await response.body?.cancel();
          return response.status;
        };
        return [await status(), await status("app-token"), await status("metrics-token")];
      } finally {
        await server.stop();
      }
    };
    assert.deepEqual(await metricsOf([]), [401, 401, 401]);
    assert.deepEqual(await metricsOf(["--metrics-token", "env:SERVE_METRICS_TOKEN"]), [401, 401, 200]);
    assert.deepEqual(await metricsOf(["--public-metrics"]), [200, 200, 200]);
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
