/**
 * The end-to-end benchmark's lazy replica section: a database of real pages (four 900-byte random rows a
 * 4 KiB page, and an index on a text key, written by the sqlite3 CLI) synced to s3rver, then opened through
 * the latency store (every request held `latencyMs`) three ways, each set beside the eager open of the same
 * database in the same run:
 *
 * - the first point query on a cold lazy replica (open included), and the requests it made, by kind;
 * - a full table scan on a cold lazy replica (open included, under the default memory cap), against an eager
 *   open followed by the same scan;
 * - point selects per second once warm (a working set that fits the cap), against the eager wasm replica and
 *   @libsql/client on the file.
 *
 * Every answer is checked against the sqlite3 CLI's on the file; a difference fails the run.
 *
 * @module
 */

import { execFile } from "node:child_process";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@libsql/client";
import { openReplica } from "../../src/config/replica.ts";
import type { Replica } from "../../src/replica/replica.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { s3StoreOn, type S3TestServer } from "../../test/_helpers/s3_server.ts";
import type { LatencyStore } from "./latency_store.ts";

const exec = promisify(execFile);
const MiB = 1024 * 1024;
const PREFIX = "lazy-bench/";
const NAME = "lazy";
/** A query every row's content takes part in. */
export const SCAN_SQL =
  "SELECT count(*), sum(id), sum((id % 997) * unicode(substr(hex(v), 1 + id % 1700, 1))), max(k) FROM t";
const POINT_SQL = "SELECT id, hex(v) FROM t WHERE k = ?";
/** Rows the warm working set spans: about 12 MiB of table pages, well under the default cap. */
const WARM_ROWS = 3_000;

/** Requests one measured step made through the latency store, by what they read. */
export interface RequestKinds {
  pointer: number;
  manifests: number;
  /** Chunk objects: a lazy open's index chunks. */
  chunkObjects: number;
  /** Ranged GETs of packs: data. */
  packs: number;
  all: number;
}

/** What the lazy section measured. */
export interface LazyBench {
  /** When and at which commit this section was measured, when it differs from the rest of the run (a
   * section measured alone and merged into an earlier latest.json). */
  measured?: { date: string; commit: string } | undefined;
  sizeMiB: number;
  bytes: number;
  latencyMs: number;
  /** An eager open of the whole database: seconds and requests. */
  eagerOpen: { seconds: number; requests: number };
  /** A cold lazy open, then one point query through the index: seconds for both, and requests of each. */
  firstQuery: { openSeconds: number; seconds: number; open: RequestKinds; query: RequestKinds };
  /** A full scan: cold lazy open + scan, against eager open + scan; the lazy replica's peak chunk bytes. */
  scan: { lazySeconds: number; eagerSeconds: number; peakBytes: number; capBytes: number; offloaded: number };
  /** Point selects per second once warm. */
  warm: { lazy: number; eager: number; libsql: number; queries: number };
  totalSeconds: number;
}

/** Options of {@linkcode measureLazy}. */
export interface LazyContext {
  sizeMiB: number;
  s3: S3TestServer;
  latency: LatencyStore;
  work: string;
  progress: (line: string) => void;
}

async function sqlite(path: string, sql: string): Promise<string> {
  return (await exec("sqlite3", [path, sql], { maxBuffer: 64 * MiB })).stdout.trim();
}

function kinds(paths: string[], bucket: string): RequestKinds {
  const at = `/${bucket}/${PREFIX}`;
  const mine = paths.filter((p) => p.startsWith(at)).map((p) => p.slice(at.length));
  return {
    pointer: mine.filter((p) => p.endsWith("/pointer")).length,
    manifests: mine.filter((p) => p.includes("/manifests/")).length,
    chunkObjects: mine.filter((p) => p.startsWith("chunks/")).length,
    packs: mine.filter((p) => p.startsWith("packs/")).length,
    all: paths.length,
  };
}

function check(what: string, got: string, expected: string): void {
  if (got !== expected) throw new Error(`bench:e2e: the lazy section's ${what} is ${got}, not ${expected}`);
}

const row = (values: ArrayLike<unknown>) => Array.from(values, String).join("|");

/** Point selects per second on `run`, over `ids` in turn, for at least `minMs`. */
async function throughput(
  run: (id: number) => Promise<unknown>,
  ids: number[],
  minMs = 1500,
): Promise<number> {
  let done = 0;
  const started = performance.now();
  while (performance.now() - started < minMs) {
    for (let i = 0; i < 500; i++) await run(ids[(done + i) % ids.length]!);
    done += 500;
  }
  return done / ((performance.now() - started) / 1000);
}

/** Builds the database, syncs it, and measures the lazy replica against the eager one. */
export async function measureLazy(context: LazyContext): Promise<LazyBench> {
  const { sizeMiB, s3, latency, work, progress } = context;
  const started = performance.now();
  const source = join(work, "lazy.db");
  const rows = sizeMiB * 1024; // four rows a 4 KiB page
  progress(`lazy: writing a ${sizeMiB} MiB database with the sqlite3 CLI`);
  await sqlite(
    source,
    `PRAGMA page_size = 4096;
     CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v BLOB NOT NULL);
     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows})
     INSERT INTO t SELECT i, printf('key-%08d', (i * 7919) % ${rows + 11}), randomblob(900) FROM n;
     CREATE INDEX t_k ON t (k);`,
  );
  const bytes = (await stat(source)).size;
  const storeAt = (endpoint: string) => s3StoreOn(s3, { endpoint, prefix: PREFIX });
  progress("lazy: syncing it to s3rver");
  await syncDatabase(source, {
    stores: [storeAt(s3.endpoint)],
    hostname: "bench",
    name: NAME,
    spoolDir: join(work, "lazy-spool"),
  });
  const slow = storeAt(latency.endpoint);
  const open = (options: Parameters<typeof openReplica>[1]) =>
    openReplica(NAME, { store: slow, pollIntervalMs: 0, ...options });
  const expectedScan = await sqlite(source, SCAN_SQL);
  const key = `key-${String(Math.floor(rows / 3)).padStart(8, "0")}`;
  const expectedPoint = await sqlite(source, `SELECT id, hex(v) FROM t WHERE k = '${key}'`);
  const ids = Array.from({ length: 2000 }, (_, i) => 1 + ((i * 7919) % WARM_ROWS));
  const idRows = new Map<number, string>();
  for (const line of (await sqlite(source, `SELECT id, k FROM t WHERE id <= ${WARM_ROWS}`)).split("\n")) {
    const [id, k] = line.split("|");
    idRows.set(Number(id), k!);
  }
  const pointById = "SELECT k FROM t WHERE id = ?";
  const warmRun = (replica: Replica) => async (id: number) => {
    const { rows } = await replica.execute({ sql: pointById, args: [id] });
    if (rows[0]![0] !== idRows.get(id)) throw new Error(`bench:e2e: row ${id} read wrong`);
  };

  // Eager: open (everything fetched), scan, then warm point selects.
  progress("lazy: an eager open of the whole database");
  await latency.takeLog();
  let t = performance.now();
  const eager = await open({ load: "eager" });
  const eagerOpenSeconds = (performance.now() - t) / 1000;
  const eagerOpenRequests = (await latency.takeLog()).length;
  let eagerScanSeconds: number;
  let eagerQps: number;
  try {
    check("eager scan", row((await eager.execute(SCAN_SQL)).rows[0]!), expectedScan);
    eagerScanSeconds = (performance.now() - t) / 1000;
    for (const id of ids) await warmRun(eager)(id);
    eagerQps = await throughput(warmRun(eager), ids);
  } finally {
    eager.close();
  }

  progress("lazy: a cold lazy open and one point query");
  await latency.takeLog();
  t = performance.now();
  const lazy = await open({ load: "lazy" });
  const openSeconds = (performance.now() - t) / 1000;
  const openLog = kinds(await latency.takeLog(), s3.bucket);
  let firstSeconds: number;
  let queryLog: RequestKinds;
  let lazyQps: number;
  try {
    const first = await lazy.execute({ sql: POINT_SQL, args: [key] });
    firstSeconds = (performance.now() - t) / 1000;
    queryLog = kinds(await latency.takeLog(), s3.bucket);
    check("point query", row(first.rows[0]!), expectedPoint);
    for (const id of ids) await warmRun(lazy)(id);
    lazyQps = await throughput(warmRun(lazy), ids);
  } finally {
    lazy.close();
  }

  progress("lazy: a cold lazy open and a full scan");
  t = performance.now();
  const scanning = await open({ load: "lazy" });
  let lazyScanSeconds: number;
  let peakBytes: number;
  let capBytes: number;
  let offloaded: number;
  try {
    check("lazy scan", row((await scanning.execute(SCAN_SQL)).rows[0]!), expectedScan);
    lazyScanSeconds = (performance.now() - t) / 1000;
    const memory = scanning.status().memory;
    peakBytes = memory.peakChunkBytes ?? 0;
    capBytes = memory.capacityBytes ?? 0;
    offloaded = memory.offloaded ?? 0;
  } finally {
    scanning.close();
  }
  await latency.takeLog();

  progress("lazy: @libsql/client on the file");
  const file = createClient({ url: `file:${source}` });
  let libsqlQps: number;
  try {
    const run = async (id: number) => {
      const { rows } = await file.execute({ sql: pointById, args: [id] });
      if (rows[0]![0] !== idRows.get(id)) throw new Error(`bench:e2e: row ${id} read wrong`);
    };
    for (const id of ids) await run(id);
    libsqlQps = await throughput(run, ids);
  } finally {
    file.close();
  }

  return {
    sizeMiB,
    bytes,
    latencyMs: latency.latencyMs,
    eagerOpen: { seconds: eagerOpenSeconds, requests: eagerOpenRequests },
    firstQuery: { openSeconds, seconds: firstSeconds, open: openLog, query: queryLog },
    scan: { lazySeconds: lazyScanSeconds, eagerSeconds: eagerScanSeconds, peakBytes, capBytes, offloaded },
    warm: { lazy: lazyQps, eager: eagerQps, libsql: libsqlQps, queries: ids.length },
    totalSeconds: (performance.now() - started) / 1000,
  };
}

/** The section's markdown. */
export function lazyMarkdown(l: LazyBench): string[] {
  const ms = (s: number) => `${(s * 1000).toFixed(0)} ms`;
  const sec = (s: number) => `${s.toFixed(2)} s`;
  const ratio = (a: number, b: number) => `${(a / b).toFixed(1)}x`;
  const q = l.firstQuery;
  const mibText = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
  const qps = (n: number) => Math.round(n).toLocaleString("en-US");
  const when = l.measured
    ? [
      `Measured on its own, ${
        l.measured.date.replace("T", " ").replace(/\.\d+Z$/, " UTC")
      }, at commit ${l.measured.commit}.`,
      "",
    ]
    : [];
  return [
    ...when,
    `${
      mibText(l.bytes)
    } database (four 900-byte random rows a 4 KiB page, an index on a text key), s3rver + ` +
    `${l.latencyMs} ms per request; every answer equals the sqlite3 CLI's on the file.`,
    "",
    "| step | lazy replica | eager replica | lazy vs eager |",
    "|:--|--:|--:|--:|",
    `| open | ${ms(q.openSeconds)} | ${sec(l.eagerOpen.seconds)} | ${
      ratio(l.eagerOpen.seconds, q.openSeconds)
    } faster |`,
    `| cold open + first point query (through the index) | ${ms(q.seconds)} | ${sec(l.eagerOpen.seconds)} ` +
    `(open) | ${ratio(l.eagerOpen.seconds, q.seconds)} faster |`,
    `| cold open + full table scan | ${sec(l.scan.lazySeconds)} | ${sec(l.scan.eagerSeconds)} | ${
      ratio(l.scan.lazySeconds, l.scan.eagerSeconds)
    } the time |`,
    `| point selects per second, warm | ${qps(l.warm.lazy)} | ${qps(l.warm.eager)} | ${
      ratio(l.warm.lazy, l.warm.eager)
    } |`,
    "",
    `- requests of the cold open: ${q.open.pointer} pointer, ${q.open.manifests} manifest, ` +
    `${q.open.chunkObjects} index chunks, ${q.open.packs} pack ranges (the b-trees' root pages); of the ` +
    `first point query: ${q.query.packs} pack ranges (${q.query.all} requests in all); the eager open: ` +
    `${l.eagerOpen.requests} requests`,
    `- the lazy scan held at most ${mibText(l.scan.peakBytes)} of chunks (cap ${
      mibText(l.scan.capBytes)
    }); ` +
    `${l.scan.offloaded} statement ran in the offload worker`,
    `- warm point selects by rowid over ${l.warm.queries} ids in ${WARM_ROWS} rows: @libsql/client on the ` +
    `file ${qps(l.warm.libsql)} per second (lazy replica ${ratio(l.warm.lazy, l.warm.libsql)} of it)`,
  ];
}
