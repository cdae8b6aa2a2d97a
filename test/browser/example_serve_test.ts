/**
 * examples/browser/serve.ts refuses what it cannot serve before it starts, in one line: a store without the
 * database, a bad `--db` or `--port`, a port in use. It builds the bundle into a directory of its own,
 * removed when it stops, and never touches `dist/browser`.
 */

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readdir } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { parsePort, serveExample } from "../../examples/browser/serve.ts";
import { TesseraError } from "../../src/errors.ts";
import { LocalStore } from "../../src/store/local.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { ROOT, runScript, sqliteCli } from "../_helpers/run.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

/** Holds a port on 127.0.0.1 until closed. */
async function occupyPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP port");
  return { server, port: address.port };
}

describe("examples/browser/serve.ts", () => {
  let dir: string;
  let storeDir: string;

  const serve = (args: string[], tmp = join(dir, "tmp")) =>
    runScript("examples/browser/serve.ts", args, { env: { TMPDIR: tmp } });

  before(async () => {
    dir = await makeTempDir("example-serve");
    storeDir = join(dir, "store");
    await mkdir(join(dir, "tmp"));
    const db = join(dir, "app.db");
    await sqliteCli(db, "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);");
    await syncDatabase(db, {
      stores: [new LocalStore(storeDir)],
      name: "app",
      hostname: "serve-host",
      spoolDir: join(dir, "spool"),
    });
  });

  after(async () => {
    await removeDir(dir);
  });

  it("parsePort() takes decimal digits from 0 to 65535 only", () => {
    for (const [text, port] of [["0", 0], ["8080", 8080], ["65535", 65535], ["080", 80]] as const) {
      assert.equal(parsePort(text), port);
    }
    for (const text of ["", "0x50", "1e3", "65536", "-1", " 80", "80 ", "8.0", "100000"]) {
      assert.equal(parsePort(text), undefined, JSON.stringify(text));
    }
  });

  it("refuses a bad --port or --db as a usage error, in one line", async () => {
    for (const port of ["0x50", "1e3", "65536"]) {
      const result = await serve(["--store", storeDir, "--db", "app", "--port", port]);
      assert.equal(result.code, 2, result.stderr);
      assert.equal(result.stderr, `example:browser: --port "${port}" is not a port number (0 to 65535)\n`);
    }
    const empty = await serve(["--store", storeDir, "--db", "app", "--port="]);
    assert.equal(empty.code, 2);
    assert.equal(empty.stderr, `example:browser: --port "" is not a port number (0 to 65535)\n`);

    const bad = await serve(["--store", storeDir, "--db", "bad/name"]);
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr,
      'example:browser: --db "bad/name" is not a database name a store gives (tessera ls --store STORE lists them)\n',
    );
  });

  it("refuses to start, exit 1, when the store is missing or lacks the database", async () => {
    const missing = join(dir, "no-store");
    const noStore = await serve(["--store", missing, "--db", "app", "--port", "0"]);
    assert.equal(noStore.code, 1);
    assert.equal(
      noStore.stderr,
      `example:browser: The store ${missing} does not exist: sync a database to it first\n`,
    );
    assert.equal(existsSync(missing), false);

    const noDb = await serve(["--store", storeDir, "--db", "shop", "--port", "0"]);
    assert.equal(noDb.code, 1);
    assert.equal(
      noDb.stderr,
      `example:browser: The store ${storeDir} holds no database "shop" (no dbs/shop/pointer): sync it first ` +
        `(tessera sync FILE --store ${storeDir} --name shop), or give a name tessera ls --store ${storeDir} lists\n`,
    );
    await assert.rejects(
      serveExample({ store: storeDir, db: "shop", port: 0 }),
      (error: unknown) => error instanceof TesseraError && error.code === "NOT_FOUND",
    );
  });

  it("reports a port in use in one line, exit 1, leaving no bundle behind", async () => {
    const { server, port } = await occupyPort();
    const tmp = join(dir, "tmp-in-use");
    await mkdir(tmp);
    try {
      const result = await serve(["--store", storeDir, "--db", "app", "--port", String(port)], tmp);
      assert.equal(result.code, 1);
      assert.equal(
        result.stderr,
        `example:browser: Cannot listen on 127.0.0.1:${port}: the port is in use; choose another with --port\n`,
      );
      assert.deepEqual(await readdir(tmp), [], "the bundle built for it is removed");
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("serves a bundle built into its own temporary directory, removed when it closes", async () => {
    const server = await serveExample({ store: storeDir, db: "app", port: 0 });
    try {
      assert.ok(relative(ROOT, server.bundle).startsWith(".."), `${server.bundle} is outside the project`);
      assert.deepEqual((await readdir(server.bundle)).filter((name) => !name.startsWith(".")).sort(), [
        "sqlite3.wasm",
        "tessera-worker.js",
        "tessera.js",
      ]);
      const response = await fetch(`${server.url}/tessera/tessera.js`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("cross-origin-embedder-policy"), "require-corp");
      await response.body?.cancel();
      const config = await (await fetch(`${server.url}/config.json`)).json();
      assert.deepEqual(config, { store: "/v1/objects", database: "app" });
    } finally {
      await server.close();
    }
    assert.equal(existsSync(server.bundle), false);
  });
});
