/**
 * `tessera bench` against a directory store, a real s3rver and a plain HTTP host: what it reports, that it
 * leaves no object behind (also after SIGINT), and how it refuses bad usage.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, it } from "node:test";
import type { CliIo } from "../../src/cli/_io.ts";
import { run } from "../../src/cli/main.ts";
import { benchPrefix, benchStore, type StoreBenchOptions } from "../../src/cli/_store_bench.ts";
import { TesseraError } from "../../src/errors.ts";
import { LocalStore } from "../../src/store/local.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import { S3Store } from "../../src/store/s3.ts";
import type { BlobStore } from "../../src/store/types.ts";
import { isDeno, ROOT } from "../_helpers/run.ts";
import { type S3TestServer, startS3Server } from "../_helpers/s3_server.ts";
import { startStaticServer } from "../_helpers/static_server.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

/** Tiny objects and short rows, so a whole run takes well under a second or two. */
const QUICK = [
  "--sizes",
  "1k,16k",
  "--concurrency",
  "2,1",
  "--range-size",
  "4k",
  "--duration",
  "0.1s",
  "--bytes",
  "64k",
];

interface Row {
  op: string;
  objectBytes: number;
  requestBytes: number;
  concurrency: number;
  requests: number;
  mbPerSec: number;
  requestsPerSec: number;
  latencyMs: { p50: number; p90: number; p99: number };
}

interface Result {
  code: number;
  out: string;
  err: string;
}

async function tessera(env: Record<string, string | undefined>, ...args: string[]): Promise<Result> {
  let out = "";
  let err = "";
  const io: CliIo = {
    env: { TESSERA_CONFIG: "", ...env },
    stdout: (d) => (out += typeof d === "string" ? d : new TextDecoder().decode(d)),
    stderr: (t) => (err += t),
    isTty: false,
  };
  const code = await run(args, io);
  return { code, out, err };
}

async function keys(store: BlobStore, prefix = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const item of store.list(prefix)) if (item.type === "object") found.push(item.key);
  return found;
}

function assertRows(report: { rows: Row[]; recommendedConcurrency: number }, ops: string[]): void {
  assert.deepEqual([...new Set(report.rows.map((r) => r.op))], ops);
  for (const row of report.rows) {
    const what = `${row.op} ${row.objectBytes} ×${row.concurrency}`;
    assert.ok(row.requests >= row.concurrency, `${what}: at least one request per worker`);
    assert.ok(row.requestsPerSec > 0, `${what}: requests/s`);
    assert.ok(row.latencyMs.p50 > 0 && row.latencyMs.p50 <= row.latencyMs.p90, `${what}: p50`);
    assert.ok(row.latencyMs.p90 <= row.latencyMs.p99, `${what}: p99`);
    if (row.op === "head" || row.op === "conditional") assert.equal(row.requestBytes, 0);
    else assert.ok(row.mbPerSec > 0, `${what}: MB/s`);
  }
  const measured = report.rows.filter((r) => r.op === "range").map((r) => r.concurrency);
  assert.deepEqual(measured, [1, 2]);
  assert.ok(measured.includes(report.recommendedConcurrency), `${report.recommendedConcurrency}`);
}

/** `store` with some of its calls replaced. */
function wrap(store: BlobStore, calls: Partial<Pick<BlobStore, "get" | "delete">>): BlobStore {
  return {
    description: store.description,
    capabilities: store.capabilities,
    get: (key, options) => store.get(key, options),
    head: (key, options) => store.head(key, options),
    put: (key, body, options) => store.put(key, body, options),
    list: (prefix, options) => store.list(prefix, options),
    delete: (key, options) => store.delete(key, options),
    ...calls,
  };
}

function quickOptions(): StoreBenchOptions {
  return {
    sizes: [1024, 16384],
    concurrencies: [1, 2],
    rangeBytes: 4096,
    durationMs: 100,
    maxBytes: 65536,
    prefix: benchPrefix(),
  };
}

function startBench(args: string[], env: Record<string, string> = {}) {
  const cli = "src/cli/main.ts";
  const argv = isDeno ? ["run", "-A", cli, "bench", ...args] : [cli, "bench", ...args];
  const child = spawn(process.execPath, argv, {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1", TESSERA_CONFIG: "", ...env },
  });
  let stderr = "";
  child.stderr.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
  child.stdout.resume();
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { child, exited, stderr: () => stderr };
}

/** Starts a long run, sends SIGINT once it has written a few objects, and checks it removed everything. */
async function interrupt(store: BlobStore, target: string, env: Record<string, string> = {}): Promise<void> {
  const long = ["--sizes", "4k,64k", "--concurrency", "1,4", "--range-size", "4k", "--duration", "60s"];
  const bench = startBench([...long, "--bytes", "1g", "--store", target], env);
  try {
    const deadline = Date.now() + 30_000;
    while ((await keys(store, "bench/")).length < 5) {
      assert.ok(Date.now() < deadline, `no object was written: ${bench.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    // Through process.kill, so the exit code is the child's own (see replicate_cli_test.ts).
    process.kill(bench.child.pid as number, "SIGINT");
    assert.equal(await bench.exited, 130, bench.stderr());
    assert.match(bench.stderr(), /^tessera: interrupted: removing the benchmark's objects/m);
    assert.doesNotMatch(bench.stderr(), /Cannot remove/);
    assert.deepEqual(await keys(store), []);
  } finally {
    bench.child.kill("SIGKILL");
  }
}

describe("tessera bench", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("bench-cli");
  });
  after(() => removeDir(dir));

  it("prints its help and exits 0", async () => {
    const result = await tessera({}, "bench", "--help");
    assert.equal(result.code, 0);
    assert.match(result.out, /^Usage: tessera bench /);
    assert.match(result.out, /--concurrency LIST/);
    assert.match(result.out, /130 interrupted/);
    const viaHelp = await tessera({}, "help", "bench");
    assert.equal(viaHelp.out, result.out);
  });

  it("refuses a bad --sizes or --concurrency value with exit 2, naming it", async () => {
    const store = join(dir, "unused");
    const sizes = await tessera({}, "bench", "--store", store, "--sizes", "64k,huge");
    assert.equal(sizes.code, 2);
    assert.match(sizes.err, /--sizes: "huge" is not a size/);
    const zero = await tessera({}, "bench", "--store", store, "--concurrency", "1,0");
    assert.equal(zero.code, 2);
    assert.match(zero.err, /--concurrency: "0" is not a whole number from 1 to 1024/);
    const range = await tessera({}, "bench", "--store", store, "--sizes", "64k");
    assert.equal(range.code, 2);
    assert.match(range.err, /--range-size 4m is larger than the largest of --sizes \(64 KiB\)/);
    assert.deepEqual(await keys(new LocalStore(store)), []);
  });

  it("measures a directory store, recommends a measured concurrency, and leaves no object", async () => {
    const storeDir = join(dir, "store");
    const store = new LocalStore(storeDir);
    await store.put("data/keep", new Uint8Array([1, 2, 3]));
    const result = await tessera({}, "bench", "--store", storeDir, ...QUICK, "--json");
    assert.equal(result.code, 0, result.err);
    const report = JSON.parse(result.out);
    assertRows(report, ["put", "get", "range", "head", "conditional"]);
    assert.deepEqual(report.rows.filter((r: Row) => r.op === "put").map((r: Row) => r.objectBytes), [
      1024,
      1024,
      16384,
      16384,
    ]);
    assert.equal(report.rows.find((r: Row) => r.op === "range").requestBytes, 4096);
    assert.match(report.prefix, /^bench\/\d{8}T\d{6}Z-[0-9a-f]{8}\/$/);
    assert.ok(report.objectsWritten >= 9, `${report.objectsWritten}`);
    assert.deepEqual(report.warnings, []);
    assert.deepEqual(await keys(store), ["data/keep"], "only the object that was there before");

    const text = await tessera({}, "bench", "--store", storeDir, ...QUICK);
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /^op +object +request +conc +requests +MB\/s +req\/s +p50 ms +p90 ms +p99 ms$/m);
    assert.match(text.out, /^range +16 KiB +4 KiB +2 +\d+ +[\d.]+ /m);
    assert.match(text.out, /^recommended restore concurrency: [12] \(ranged GETs of 4 KiB: /m);
    assert.deepEqual(await keys(store), ["data/keep"]);
  });

  it("reads an existing object with --key and writes nothing; a missing key exits 3", async () => {
    const storeDir = join(dir, "keyed");
    const store = new LocalStore(storeDir);
    await store.put("packs/one", crypto.getRandomValues(new Uint8Array(20_000)));
    const args = ["--concurrency", "1,2", "--range-size", "4k", "--duration", "0.1s", "--bytes", "64k"];
    const result = await tessera({}, "bench", "--store", storeDir, "--key", "packs/one", ...args, "--json");
    assert.equal(result.code, 0, result.err);
    const report = JSON.parse(result.out);
    assertRows(report, ["get", "range", "head", "conditional"]);
    assert.equal(report.objectsWritten, 0);
    assert.equal(report.prefix, null);
    assert.deepEqual(await keys(store), ["packs/one"]);
    const missing = await tessera({}, "bench", "--store", storeDir, "--key", "packs/none", ...args);
    assert.equal(missing.code, 3);
    assert.match(missing.err, /no object "packs\/none"/);
  });

  it("measures a read-only HTTP store only through --key", async () => {
    const site = join(dir, "site");
    const local = new LocalStore(site);
    await local.put("pack.bin", crypto.getRandomValues(new Uint8Array(16_384)));
    const server = await startStaticServer(site);
    try {
      const refused = await tessera({}, "bench", "--store", server.url, ...QUICK);
      assert.equal(refused.code, 2);
      assert.match(refused.err, /is read-only: name an existing object to read with --key KEY/);
      const args = ["--concurrency", "1,2", "--range-size", "4k", "--duration", "0.1s", "--bytes", "32k"];
      const result = await tessera(
        {},
        "bench",
        "--store",
        server.url,
        "--key",
        "pack.bin",
        ...args,
        "--json",
      );
      assert.equal(result.code, 0, result.err);
      const report = JSON.parse(result.out);
      assertRows(report, ["get", "range", "head", "conditional"]);
      assert.deepEqual(report.warnings, [], "http-server answers If-None-Match with 304");
      assert.deepEqual(await keys(local), ["pack.bin"]);
    } finally {
      await server.stop();
    }
  });

  it("removes what it wrote when a request fails, and rejects with that failure", async () => {
    const memory = new MemoryStore();
    let gets = 0;
    const failing = wrap(memory, {
      get: (key, options) => {
        if (++gets === 3) throw new TesseraError("STORE_IO", "Cannot read: the disk is on fire");
        return memory.get(key, options);
      },
    });
    await assert.rejects(benchStore(failing, quickOptions()), /the disk is on fire/);
    assert.ok(gets >= 3);
    assert.deepEqual(await keys(memory), []);
  });

  it("names the prefix left behind when removing fails", async () => {
    const memory = new MemoryStore();
    const stuck = wrap(memory, { delete: () => Promise.reject(new Error("access denied")) });
    const options = quickOptions();
    await assert.rejects(benchStore(stuck, options), (error: unknown) => {
      assert.ok(error instanceof TesseraError);
      assert.equal(error.code, "STORE_IO");
      assert.ok(
        error.message.startsWith(
          `Cannot remove the benchmark's objects under "${options.prefix}" in memory: access denied;`,
        ),
        error.message,
      );
      return true;
    });
    assert.ok((await keys(memory)).length > 0);
  });

  it("leaves no object in a directory store when interrupted with SIGINT (exit 130)", async () => {
    const storeDir = join(dir, "interrupted");
    await interrupt(new LocalStore(storeDir), storeDir);
  });

  describe("against s3rver", () => {
    let server: S3TestServer;
    let env: Record<string, string>;
    let store: S3Store;
    // s3rver checks no signature.
    const bucket = (prefix = "") =>
      new S3Store({ bucket: server.bucket, endpoint: server.endpoint, credentials: null }, { prefix });
    before(async () => {
      server = await startS3Server();
      env = {
        AWS_ACCESS_KEY_ID: server.accessKeyId,
        AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
        AWS_REGION: server.region,
        AWS_ENDPOINT_URL: server.endpoint,
      };
      store = bucket();
    });
    after(() => server.stop());

    it("measures the bucket and leaves no object in it", async () => {
      const target = `s3://${server.bucket}/team/app`;
      const result = await tessera(env, "bench", "--store", target, ...QUICK, "--json");
      assert.equal(result.code, 0, result.err);
      const report = JSON.parse(result.out);
      assertRows(report, ["put", "get", "range", "head", "conditional"]);
      assert.match(report.store, /^s3:\/\/tessera-test\/team\/app\/ at http:\/\/127\.0\.0\.1:\d+$/);
      assert.ok(report.objectsWritten >= 9);
      assert.deepEqual(report.warnings, []);
      assert.deepEqual(await keys(store), []);
    });

    it("leaves no object in the bucket when interrupted with SIGINT (exit 130)", async () => {
      await interrupt(bucket("irq/"), `s3://${server.bucket}/irq`, env);
      assert.deepEqual(await keys(store), []);
    });
  });
});
