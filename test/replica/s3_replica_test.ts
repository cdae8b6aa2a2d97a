import assert from "node:assert/strict";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient } from "@libsql/client";
import { openReplica } from "../../src/config/replica.ts";
import type { Replica } from "../../src/replica/replica.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { type FaultProxy, startFaultProxy } from "../_helpers/fault_proxy.ts";
import { s3StoreOn, type S3TestServer, startS3Server } from "../_helpers/s3_server.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { startWriter } from "../_helpers/writer.ts";
import { DENO, ROOT } from "../_helpers/run.ts";
import { spawn } from "node:child_process";

async function run(
  command: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, { cwd: ROOT, env: { PATH: process.env.PATH ?? "", NO_COLOR: "1" } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Uint8Array) => (stdout += new TextDecoder().decode(d)));
  child.stderr.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  return { code, stdout, stderr };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the first value `promise` settles to; keeps the event loop alive while it waits (the
 * replica's poll timer does not), failing after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let settled = false;
  const watched = promise.finally(() => (settled = true));
  const deadline = Date.now() + ms;
  while (!settled && Date.now() < deadline) await sleep(10);
  if (!settled) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
  return await watched;
}

describe("replicas of a database in a real S3 server (s3rver)", () => {
  let server: S3TestServer;
  let proxy: FaultProxy;
  let dir: string;
  let n = 0;

  const storeAt = (endpoint: string, prefix: string) => s3StoreOn(server, { endpoint, prefix });

  before(async () => {
    server = await startS3Server();
    proxy = await startFaultProxy(server.endpoint);
    dir = await makeTempDir("s3-replica");
  });
  after(async () => {
    await proxy?.stop();
    await server?.stop();
    await removeDir(dir);
  });

  it("polls the pointer with conditional GETs (304 while unchanged) and fetches only what changed", async () => {
    const prefix = `poll-${++n}/`;
    const sub = join(dir, String(n));
    await mkdir(sub, { recursive: true });
    const source = join(sub, "app.db");
    const db = createClient({ url: `file:${source}` });
    await db.executeMultiple(`
      PRAGMA page_size = 4096;
      CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB);
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
      INSERT INTO t SELECT i, randomblob(200) FROM n;
    `);
    const direct = storeAt(server.endpoint, prefix);
    const sync = () =>
      syncDatabase(source, {
        stores: [direct],
        hostname: "h",
        name: "poll",
        spoolDir: join(sub, "spool"),
        chunkSize: 16384,
      });
    await sync();

    await proxy.resetLog();
    const replica = await openReplica("poll", { store: storeAt(proxy.endpoint, prefix), pollIntervalMs: 40 });
    try {
      assert.equal(Number((await replica.execute("SELECT count(*) FROM t")).rows[0]![0]), 2000);
      await sleep(600);
      const pointerKey = `/${server.bucket}/${prefix}dbs/poll/pointer`;
      let log = await proxy.log();
      const pointerGets = log.filter((e) => e.method === "GET" && e.path.startsWith(pointerKey));
      assert.ok(pointerGets.length >= 6, `${pointerGets.length} pointer GETs in 600 ms at 40 ms`);
      assert.equal(pointerGets[0]!.status, 200, "the first read of the pointer is a full GET");
      const later = pointerGets.slice(1).filter((e) => e.status !== null);
      assert.ok(later.length >= 5);
      assert.deepEqual(
        new Set(later.map((e) => e.status)),
        new Set([304]),
        "unchanged pointer: every poll is a 304",
      );
      const othersAfterOpen = log.slice(log.indexOf(pointerGets[1]!)).filter((e) =>
        !e.path.startsWith(pointerKey)
      );
      assert.deepEqual(othersAfterOpen, [], "while unchanged, nothing but the pointer is read");

      // One row changes: the next snapshot costs the pointer, its manifest, and the chunks that changed.
      await proxy.resetLog();
      const seen = new Promise<number>((resolve) => replica.on("snapshot", (e) => resolve(e.chunksFetched)));
      await db.execute("UPDATE t SET v = randomblob(200) WHERE k = 1000");
      const report = await sync();
      const fetched = await within(seen, 10_000, "the replica to prepare snapshot 2");
      log = await proxy.log();
      const manifestGets = log.filter((e) => e.path.includes("/manifests/"));
      // Chunks come from packs, neighbours with one ranged GET: never more requests than chunks fetched.
      const chunkGets = log.filter((e) => /\/(chunks|packs)\//.test(e.path));
      assert.equal(manifestGets.length, 1);
      assert.ok(
        chunkGets.length >= 1 && chunkGets.length <= fetched,
        `${chunkGets.length} GETs, ${fetched} chunks`,
      );
      assert.ok(
        fetched >= 1 && fetched <= report.chunks.uploaded,
        `${fetched} chunks fetched, ${report.chunks.uploaded} uploaded`,
      );
      assert.equal(Number((await replica.execute("SELECT count(*) FROM t")).rows[0]![0]), 2000);
      assert.equal(replica.sequence, 2);
      assert.ok(replica.status().notModified >= 5);
    } finally {
      replica.close();
      db.close();
    }
  });

  for (const engine of ["wasm", "native"] as const) {
    it(`a ${engine} replica follows a live writer: every row within a few polls, never backwards, always intact`, async () => {
      const prefix = `live-${++n}/`;
      const sub = join(dir, String(n));
      await mkdir(sub, { recursive: true });
      const source = join(sub, "live.db");
      const store = storeAt(server.endpoint, prefix);
      const writer = await startWriter(source, { mode: "wal", payload: 3000, pauseMs: 5 });
      await writer.waitFor(5);
      const sync = () =>
        syncDatabase(source, { stores: [store], hostname: "h", name: "live", spoolDir: join(sub, "spool") });
      await sync();
      const pollIntervalMs = 100;
      const replica: Replica = await openReplica("live", {
        store,
        engine,
        pollIntervalMs,
        autoRefresh: true,
      });
      const errors: Error[] = [];
      replica.on("error", (e) => errors.push(e.error));
      let lastSeen = 0;
      const checkedSequences = new Set<number>();
      let reads = 0;
      const readOnce = async () => {
        const tx = await replica.transaction("read");
        try {
          const [meta, items] = await tx.batch([
            "SELECT last FROM meta",
            "SELECT count(*), coalesce(min(k), 0), coalesce(max(k), 0) FROM items",
          ]);
          const last = Number(meta!.rows[0]![0]);
          const [rows, minK, maxK] = Array.from(items!.rows[0]!, Number) as [number, number, number];
          assert.ok(last >= lastSeen, `went backwards: ${last} after ${lastSeen}`);
          assert.equal(rows, last, "a committed state: rows 1..last");
          assert.equal(maxK, last);
          if (last > 0) assert.equal(minK, 1);
          lastSeen = last;
          reads++;
          const sequence = Number((await tx.execute("PRAGMA tessera_snapshot_sequence")).rows[0]![0]);
          if (!checkedSequences.has(sequence)) {
            checkedSequences.add(sequence);
            assert.equal(
              (await tx.execute("PRAGMA integrity_check")).rows[0]![0],
              "ok",
              `snapshot ${sequence}`,
            );
          }
        } finally {
          tx.close();
        }
      };
      try {
        const until = Date.now() + 2500;
        let syncs = 1;
        let reading = true;
        const reader = (async () => {
          while (reading) {
            await readOnce();
            await sleep(10);
          }
        })();
        while (Date.now() < until) {
          await sync();
          syncs++;
          await sleep(150);
        }
        const committed = await writer.stop();
        const final = await sync();
        const published = Date.now();
        // Visible within a bounded number of poll intervals (the bound is generous for a loaded 2-core CI).
        while (replica.sequence < final.sequence && Date.now() - published < 100 * pollIntervalMs) {
          await sleep(10);
        }
        reading = false;
        await reader;
        await readOnce();
        assert.equal(
          replica.sequence,
          final.sequence,
          `replica at ${replica.sequence} after ${100 * pollIntervalMs} ms`,
        );
        assert.equal(lastSeen, committed, "the replica sees every row the writer committed");
        assert.ok(
          checkedSequences.size >= 3,
          `served ${checkedSequences.size} snapshots over ${syncs} syncs`,
        );
        assert.ok(reads > 20);
        // s3rver overwrites an object in place, so a poll can read the pointer half-written (S3 never shows
        // a partial object). The replica must reject such a read and recover at the next poll; nothing else
        // may fail.
        const unexpected = errors.filter((e) =>
          !/pointer.*the object is \d+ bytes, shorter than/.test(e.message)
        );
        assert.deepEqual(unexpected, []);
      } finally {
        replica.close();
        await writer.stop().catch(() => {});
      }
    });
  }

  it("opens from a Verneuil config: a second replica sharing the local cache fetches no chunk", async () => {
    const sub = join(dir, String(++n));
    await mkdir(sub, { recursive: true });
    const source = join(sub, "verneuil.db");
    const db = createClient({ url: `file:${source}` });
    await db.executeMultiple(`
      CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB);
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
      INSERT INTO t SELECT i, randomblob(100) FROM n;
    `);
    db.close();
    // Verneuil's shape keeps keys at the bucket's root.
    await syncDatabase(source, {
      stores: [storeAt(server.endpoint, "")],
      hostname: "vhost",
      spoolDir: join(sub, "spool"),
    });
    const config = {
      replication_targets: [
        {
          s3: {
            region: server.region,
            chunk_bucket: server.bucket,
            manifest_bucket: server.bucket,
            domain_addressing: false,
            endpoint: proxy.endpoint,
          },
        },
        { local: { directory: join(sub, "cache"), num_shards: 8, capacity: 10000 } },
      ],
    };
    const env = { AWS_ACCESS_KEY_ID: server.accessKeyId, AWS_SECRET_ACCESS_KEY: server.secretAccessKey };
    const chunkGets = async () =>
      (await proxy.log()).filter((e) => e.method === "GET" && /\/(chunks|packs)\//.test(e.path)).length;
    await proxy.resetLog();
    const cold = await openReplica(`tessera://vhost${source}`, { config, env, pollIntervalMs: 0 });
    const coldGets = await chunkGets();
    assert.ok(coldGets >= 1, `${coldGets} chunk GETs when cold`);
    assert.equal(Number((await cold.execute("SELECT count(*) FROM t")).rows[0]![0]), 3000);
    cold.close();
    await proxy.resetLog();
    const warm = await openReplica(`tessera://vhost${source}`, {
      config,
      env,
      pollIntervalMs: 0,
      engine: "native",
    });
    assert.equal(await chunkGets(), 0, "every chunk came from the shared cache directory");
    assert.equal(Number((await warm.execute("SELECT count(*) FROM t")).rows[0]![0]), 3000);
    warm.close();
  });

  for (const runtime of ["deno", "node"] as const) {
    it(`the wasm engine needs no filesystem: a ${runtime} process that cannot write reads a replica`, async () => {
      const prefix = `nofs-${runtime}-${++n}/`;
      const sub = join(dir, String(n));
      await mkdir(sub, { recursive: true });
      const source = join(sub, "nofs.db");
      const db = createClient({ url: `file:${source}` });
      await db.executeMultiple("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3);");
      db.close();
      await syncDatabase(source, {
        stores: [storeAt(server.endpoint, prefix)],
        hostname: "h",
        name: "nofs",
        spoolDir: join(sub, "spool"),
      });
      const s3 = JSON.stringify({
        bucket: server.bucket,
        endpoint: server.endpoint,
        region: server.region,
        accessKeyId: server.accessKeyId,
        secretAccessKey: server.secretAccessKey,
        prefix,
      });
      let command: string;
      let args: string[];
      if (runtime === "deno") {
        // Only the .wasm binary may be read, only 127.0.0.1 reached; no writes, no environment.
        const wasmDir = join(ROOT, "node_modules/@sqlite.org/sqlite-wasm/dist");
        command = DENO;
        args = [
          "run",
          "--no-prompt",
          `--allow-read=${wasmDir}`,
          "--allow-net=127.0.0.1",
          "test/replica/_nofs_main.ts",
          s3,
        ];
      } else {
        // Node cannot run TypeScript here: bundle first, keeping packages as imports of node_modules.
        const bundle = join(ROOT, ".tmp", `replica-node-${process.pid}.mjs`);
        // esbuild comes from npm (a dev dependency), so bundling downloads nothing at test time. The
        // native engine's @libsql/client import would load a native addon, which the permission model
        // refuses; this process only uses the wasm engine, so the web build of the client stands in.
        const built = await run(join(ROOT, "node_modules/.bin/esbuild"), [
          "test/replica/_nofs_main.ts",
          "--bundle",
          "--format=esm",
          "--platform=node",
          "--packages=external",
          `--outfile=${bundle}`,
          "--alias:@libsql/client=@libsql/client/web",
          "--log-level=warning",
        ]);
        assert.equal(built.code, 0, built.stderr);
        command = "node";
        args = ["--experimental-permission", `--allow-fs-read=${ROOT}*`, bundle, s3];
      }
      const result = await run(command, args);
      if (runtime === "node") await rm(args[2]!, { force: true });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(JSON.parse(result.stdout), { sum: 6, sequence: 1, engine: "wasm", writeDenied: true });
    });
  }
});
