/**
 * Store throughput for 64 KiB objects (the default chunk size): PUT then GET at concurrency 1, 8 and 32,
 * against a real s3rver process through our S3 client, and against the local-directory store. Each is
 * set beside a baseline measured in the same run: unsigned `fetch` against the same server (the floor any
 * S3 client pays to s3rver), and plain `writeFile`/`readFile` for the directory store (no fsync, no rename).
 *
 * Usage: deno task bench [--objects N] [--json]     (or: bun bench/store_throughput.ts)
 *
 * @module
 */

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { S3Client } from "../src/s3/client.ts";
import { LocalStore } from "../src/store/local.ts";
import { MemoryStore } from "../src/store/memory.ts";
import type { BlobStore } from "../src/store/types.ts";
import { startS3Server } from "../test/_helpers/s3_server.ts";
import { makeTempDir, removeDir } from "../test/_helpers/temp.ts";

const SIZE = 64 * 1024;
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { objects: { type: "string", default: "512" }, json: { type: "boolean", default: false } },
});
const objects = Number(values.objects);
const runtime = "Deno" in globalThis ? "deno" : "bun";

interface Row {
  target: string;
  op: "PUT" | "GET";
  concurrency: number;
  seconds: number;
  mbPerSec: number;
  reqPerSec: number;
}

async function timed(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) await task(next++);
  }));
  return (performance.now() - start) / 1000;
}

function row(target: string, op: "PUT" | "GET", concurrency: number, seconds: number): Row {
  return {
    target,
    op,
    concurrency,
    seconds,
    mbPerSec: (objects * SIZE) / 1e6 / seconds,
    reqPerSec: objects / seconds,
  };
}

const payloads = Array.from({ length: objects }, (_, i) => {
  const bytes = new Uint8Array(SIZE);
  new DataView(bytes.buffer).setUint32(0, i);
  for (let j = 4; j < SIZE; j += 4096) bytes[j] = (i * 31 + j) & 0xff;
  return bytes;
});

interface Target {
  name: string;
  put(key: string, bytes: Uint8Array): Promise<void>;
  get(key: string): Promise<void>;
}

function storeTarget(name: string, store: BlobStore): Target {
  return {
    name,
    put: async (key, bytes) => void await store.put(key, bytes),
    get: async (key) => {
      const got = await store.get(key);
      if (got.status !== "ok" || got.body.length !== SIZE) throw new Error(`bad read of ${key} from ${name}`);
    },
  };
}

const rows: Row[] = [];
const server = await startS3Server();
const dir = await makeTempDir("bench");
try {
  const client = new S3Client({
    bucket: server.bucket,
    endpoint: server.endpoint,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  });
  const base = `${server.endpoint}/${server.bucket}`;
  const local = new LocalStore(join(dir, "store"));
  const localNoSync = new LocalStore(join(dir, "store-nosync"), { durable: false });
  const memory = new MemoryStore();
  await mkdir(join(dir, "plain"), { recursive: true });
  const check = (what: string, length: number) => {
    if (length !== SIZE) throw new Error(`bad read of ${what}: ${length} bytes`);
  };
  const targets: Target[] = [
    {
      name: "s3 client",
      put: async (key, bytes) => void await client.putObject(key, bytes),
      get: async (key) => {
        const got = await client.getObject(key);
        check(key, got.status === "ok" ? got.body.length : -1);
      },
    },
    {
      name: "raw fetch",
      put: async (key, bytes) => {
        const response = await fetch(`${base}/raw/${key}`, {
          method: "PUT",
          body: bytes as Uint8Array<ArrayBuffer>,
        });
        await response.arrayBuffer();
        if (!response.ok) throw new Error(`raw PUT ${response.status}`);
      },
      get: async (key) => check(key, (await (await fetch(`${base}/raw/${key}`)).arrayBuffer()).byteLength),
    },
    storeTarget("local store", local),
    storeTarget("local, no fsync", localNoSync),
    {
      name: "plain files",
      put: (key, bytes) => writeFile(join(dir, "plain", key.replace("/", "-")), bytes),
      get: async (key) => check(key, (await readFile(join(dir, "plain", key.replace("/", "-")))).length),
    },
    storeTarget("memory store", memory),
  ];
  for (const c of [1, 8, 32]) {
    for (const target of targets) {
      const key = (i: number) => `c${c}/k${i}`;
      rows.push(
        row(
          target.name,
          "PUT",
          c,
          await timed(objects, c, (i) => target.put(key(i), payloads[i] as Uint8Array)),
        ),
      );
      rows.push(row(target.name, "GET", c, await timed(objects, c, (i) => target.get(key(i)))));
    }
  }
} finally {
  await server.stop();
  await removeDir(dir);
}

function find(target: string, op: string, c: number): Row | undefined {
  return rows.find((r) => r.target === target && r.op === op && r.concurrency === c);
}

if (values.json) {
  console.log(JSON.stringify({ runtime, objectBytes: SIZE, objects, rows }, null, 2));
} else {
  console.log(`store throughput, ${objects} objects of ${SIZE / 1024} KiB, runtime ${runtime}`);
  console.log("target           op   conc     MB/s    req/s   vs baseline");
  for (const r of rows) {
    const baseline = r.target === "s3 client"
      ? find("raw fetch", r.op, r.concurrency)
      : r.target === "local store" || r.target === "local, no fsync"
      ? find("plain files", r.op, r.concurrency)
      : undefined;
    const ratio = baseline ? `${(r.mbPerSec / baseline.mbPerSec).toFixed(2)}x ${baseline.target}` : "";
    console.log(
      `${r.target.padEnd(16)} ${r.op.padEnd(4)} ${String(r.concurrency).padStart(4)} ${
        r.mbPerSec.toFixed(1).padStart(8)
      } ` +
        `${r.reqPerSec.toFixed(0).padStart(8)}   ${ratio}`,
    );
  }
}
