/**
 * The replication benchmark: how far `tessera replicate` trails a live writer, what it costs the writer, and
 * how its spool behaves through a store outage.
 *
 * - lag: a writer process commits at 1, 10 and 100 commits/s; each commit's lag is the time from its commit
 *   returning (the writer's clock) to the pointer naming a snapshot that holds it (the `published` event);
 *   which commit a snapshot holds is read afterwards by restoring it. A directory store and s3rver.
 * - writer: the same writer as fast as it can, with and without the replicator running, in WAL and
 *   rollback-journal mode: commits/s and the longest commit (a writer's stall), each as a ratio.
 * - outage: the store is down for a while (30 s) as the writer commits at 10/s: spool size and pending
 *   images every 5 s, images coalesced, and the time to publish the backlog once the store is back.
 *
 * Every figure is set beside its alternative measured in the same run; there are no thresholds. Prints
 * markdown, then one JSON line.
 *
 * Usage: deno task bench:replicate [--quick] [--only lag,writer,outage]
 *        (or: bun scripts/_bench/replicate.ts ...)
 *
 * @module
 */

import { createClient } from "@libsql/client";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { availableParallelism, cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { StoreChunkSource } from "../../src/chunk/source.ts";
import { Replicator, type ReplicatorOptions } from "../../src/replicate/replicator.ts";
import { loadSequence } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { LocalStore } from "../../src/store/local.ts";
import { S3Store } from "../../src/store/s3.ts";
import type { BlobStore } from "../../src/store/types.ts";
import { type S3TestServer, startS3Server } from "../../test/_helpers/s3_server.ts";
import { makeTempDir } from "../../test/_helpers/temp.ts";
import { OutageStore } from "../../test/replicate/_outage.ts";
import { markdownTable, mib, ms, percentile, rate, versus, wallMs } from "./replica_report.ts";
import { print, removeWorkDir, runtimeName } from "./run.ts";

const SECTIONS = ["lag", "writer", "outage"] as const;
type Section = typeof SECTIONS[number];
const USAGE = `usage: replicate.ts [--quick] [--only ${SECTIONS.join("|")}[,...]]`;
const SCRIPT = fileURLToPath(import.meta.url);

const FULL = {
  lag: { rates: [1, 10, 100], seconds: 10, stores: ["directory", "s3rver"] },
  writer: { seconds: 10 },
  outage: { seconds: 30, sampleEveryS: 5, rate: 10 },
};
const QUICK: typeof FULL = {
  lag: { rates: [1, 10, 100], seconds: 2, stores: ["directory"] },
  writer: { seconds: 1 },
  outage: { seconds: 4, sampleEveryS: 2, rate: 10 },
};
// The replicator's own defaults, stated in the output: they set the lag.
const REPLICATOR = { debounceMs: 100, maxDelayMs: 1000, pollIntervalMs: 500 };
const PAYLOAD = 1000;

// ---- the writer process --------------------------------------------------------------------------------

/** What the writer process is told, as its one argument after `--writer`. */
interface WriterConfig {
  path: string;
  /** Commits per second; 0: as fast as it can. */
  rate: number;
  seconds: number;
  /** Report each commit's time (lag runs). */
  times: boolean;
}

/** What it prints, one JSON line, when done. */
interface WriterReport {
  commits: number;
  elapsedMs: number;
  /** Commit latencies: the longest (a stall), and the 99th percentile. */
  maxMs: number;
  p99Ms: number;
  /** Wall-clock time each commit returned, by k - first; with `times` only. */
  first: number;
  committedAt: number[];
}

async function writerMain(config: WriterConfig): Promise<void> {
  const db = createClient({ url: `file:${config.path}` });
  await db.execute("PRAGMA busy_timeout = 20000");
  let k = Number((await db.execute("SELECT last FROM meta")).rows[0]?.[0] ?? 0);
  const first = k + 1;
  const latencies: number[] = [];
  const committedAt: number[] = [];
  const payload = new Uint8Array(PAYLOAD);
  const start = performance.now();
  const end = start + config.seconds * 1000;
  let stopping = false;
  process.on("SIGTERM", () => (stopping = true));
  while (!stopping) {
    if (config.rate > 0) {
      const due = start + (k - first + 1) * 1000 / config.rate;
      if (due >= end) break;
      if (due > performance.now()) await new Promise((r) => setTimeout(r, due - performance.now()));
    } else if (performance.now() >= end) break;
    k++;
    for (let i = 0; i < PAYLOAD; i += 64) payload[i] = (k * 7 + i) & 0xff;
    const t0 = performance.now();
    await db.batch([
      { sql: "INSERT INTO items (k, payload) VALUES (?, ?)", args: [k, payload] },
      { sql: "UPDATE meta SET last = ? WHERE id = 1", args: [k] },
    ], "write");
    latencies.push(performance.now() - t0);
    if (config.times) committedAt.push(wallMs());
  }
  const report: WriterReport = {
    commits: latencies.length,
    elapsedMs: performance.now() - start,
    maxMs: Math.max(0, ...latencies),
    p99Ms: percentile(latencies, 99),
    first,
    committedAt,
  };
  db.close();
  console.log(JSON.stringify(report));
}

/** Runs the writer in its own process, as an application's writer is, and waits for its report. */
function runWriter(config: WriterConfig): { done: Promise<WriterReport>; child: ChildProcess } {
  const isDeno = "Deno" in globalThis;
  const args = [SCRIPT, "--writer", JSON.stringify(config)];
  const child = spawn(process.execPath, isDeno ? ["run", "-A", ...args] : args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
  child.stderr?.on("data", (d: Uint8Array) => (err += new TextDecoder().decode(d)));
  const done = new Promise<WriterReport>((resolve, reject) => {
    child.on("close", (code) => {
      if (code !== 0) reject(new Error(`bench:replicate: the writer failed (${code}): ${err}`));
      else resolve(JSON.parse(out.trim().split("\n").at(-1) ?? "") as WriterReport);
    });
  });
  return { done, child };
}

/** A fresh database with the writer's schema. */
async function createDatabase(path: string, mode: "wal" | "delete"): Promise<void> {
  const db = createClient({ url: `file:${path}` });
  await db.execute(`PRAGMA journal_mode = ${mode === "wal" ? "WAL" : "DELETE"}`);
  await db.execute("CREATE TABLE items (k INTEGER PRIMARY KEY, payload BLOB NOT NULL)");
  await db.execute("CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL)");
  await db.execute("INSERT INTO meta (id, last) VALUES (1, 0)");
  db.close();
}

// ---- measurements --------------------------------------------------------------------------------------

interface Context {
  work: string;
  s3?: S3TestServer | undefined;
  progress: (line: string) => void;
  runs: number;
}

function storeFor(ctx: Context, kind: string, dir: string): BlobStore {
  if (kind === "directory") return new LocalStore(join(dir, "store"));
  const s3 = ctx.s3 as S3TestServer;
  return new S3Store({
    bucket: s3.bucket,
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  }, { prefix: `${dir.split("/").at(-1)}/` });
}

async function newRun(ctx: Context, mode: "wal" | "delete"): Promise<{ dir: string; db: string }> {
  const dir = join(ctx.work, `run-${++ctx.runs}`);
  await mkdir(dir, { recursive: true });
  const db = join(dir, "app.db");
  await createDatabase(db, mode);
  return { dir, db };
}

function replicatorOptions(dir: string, store: BlobStore, extra: Partial<ReplicatorOptions> = {}) {
  return {
    stores: [store],
    hostname: "bench",
    name: "bench",
    spoolDir: join(dir, "spool"),
    ...REPLICATOR,
    ...extra,
  } satisfies ReplicatorOptions;
}

interface LagResult {
  store: string;
  rate: number;
  commits: number;
  snapshots: number;
  p50: number;
  p99: number;
  max: number;
}

/** The writer's `meta.last` in snapshot `sequence`. */
async function lastIn(store: BlobStore, sequence: number, dir: string): Promise<number> {
  const { manifest } = await loadSequence(store, "bench", sequence);
  const out = join(dir, `restored-${sequence}.db`);
  await restoreImage({ manifest, chunks: new StoreChunkSource(store), out });
  const db = createClient({ url: `file:${out}` });
  try {
    return Number((await db.execute("SELECT last FROM meta")).rows[0]?.[0]);
  } finally {
    db.close();
  }
}

async function measureLag(
  ctx: Context,
  kind: string,
  commitsPerS: number,
  seconds: number,
): Promise<LagResult> {
  ctx.progress(`lag: ${kind}, ${commitsPerS} commits/s for ${seconds} s`);
  const { dir, db } = await newRun(ctx, "wal");
  const store = storeFor(ctx, kind, dir);
  const published: { sequence: number; at: number }[] = [];
  const replicator = await Replicator.start(db, {
    ...replicatorOptions(dir, store),
    onEvent: (e) => {
      if (e.type === "published") published.push({ sequence: e.sequence, at: wallMs() });
    },
  });
  let report: WriterReport;
  try {
    await replicator.flush();
    report = await runWriter({ path: db, rate: commitsPerS, seconds, times: true }).done;
    // The last commits are published by the replicator's own timing, not by a flush.
    const lastK = report.first + report.commits - 1;
    const deadline = Date.now() + REPLICATOR.maxDelayMs + 30_000;
    while (Date.now() < deadline) {
      const newest = published.at(-1);
      if (
        newest && replicator.status().pending === 0 &&
        replicator.status().lastCapture?.sequence === newest.sequence
      ) {
        if ((await lastIn(store, newest.sequence, dir)) >= lastK) break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await replicator.close();
  }
  const holds: { at: number; last: number }[] = [];
  for (const p of published) holds.push({ at: p.at, last: await lastIn(store, p.sequence, dir) });
  const lags: number[] = [];
  let h = 0;
  for (const [i, committed] of report.committedAt.entries()) {
    const k = report.first + i;
    while (h < holds.length && (holds[h] as { last: number }).last < k) h++;
    const hold = holds[h];
    if (hold) lags.push(hold.at - committed);
  }
  if (lags.length < report.commits) {
    throw new Error(`bench:replicate: ${report.commits - lags.length} commits were never published`);
  }
  return {
    store: kind,
    rate: commitsPerS,
    commits: report.commits,
    snapshots: published.length,
    p50: percentile(lags, 50),
    p99: percentile(lags, 99),
    max: Math.max(...lags),
  };
}

interface WriterResult {
  mode: "wal" | "delete";
  without: WriterReport;
  with: WriterReport;
  snapshots: number;
  longestHoldMs: number;
}

async function measureWriter(ctx: Context, mode: "wal" | "delete", seconds: number): Promise<WriterResult> {
  ctx.progress(`writer: ${mode}, ${seconds} s without the replicator`);
  const bare = await newRun(ctx, mode);
  const without = await runWriter({ path: bare.db, rate: 0, seconds, times: false }).done;
  ctx.progress(`writer: ${mode}, ${seconds} s with the replicator`);
  const { dir, db } = await newRun(ctx, mode);
  const replicator = await Replicator.start(db, replicatorOptions(dir, storeFor(ctx, "directory", dir)));
  try {
    await replicator.flush();
    const result = await runWriter({ path: db, rate: 0, seconds, times: false }).done;
    const status = replicator.status();
    return { mode, without, with: result, snapshots: status.captures, longestHoldMs: status.longestHoldMs };
  } finally {
    await replicator.close();
  }
}

interface OutageSample {
  atS: number;
  pending: number;
  spoolBytes: number;
  coalesced: number;
}

interface OutageResult {
  seconds: number;
  rate: number;
  samples: OutageSample[];
  captured: number;
  coalesced: number;
  drainMs: number;
  maxSpoolBytes: number;
}

async function measureOutage(
  ctx: Context,
  settings: { seconds: number; sampleEveryS: number; rate: number },
): Promise<OutageResult> {
  ctx.progress(`outage: ${settings.seconds} s at ${settings.rate} commits/s`);
  const { dir, db } = await newRun(ctx, "wal");
  const store = new OutageStore(storeFor(ctx, "directory", dir));
  const replicator = await Replicator.start(db, replicatorOptions(dir, store));
  const writer = runWriter({ path: db, rate: settings.rate, seconds: settings.seconds + 3600, times: false });
  const sleep = (msToWait: number) => new Promise((r) => setTimeout(r, msToWait));
  try {
    await replicator.flush();
    await sleep(1000);
    const before = replicator.status();
    store.down = true;
    const started = performance.now();
    const samples: OutageSample[] = [];
    for (let s = settings.sampleEveryS; s <= settings.seconds; s += settings.sampleEveryS) {
      await sleep(started + s * 1000 - performance.now());
      const status = replicator.status();
      samples.push({
        atS: s,
        pending: status.pending,
        spoolBytes: status.pendingBytes,
        coalesced: status.coalesced - before.coalesced,
      });
    }
    const during = replicator.status();
    const target = during.lastCapture?.sequence ?? 0;
    store.down = false;
    const back = performance.now();
    // The store is back while the writer keeps committing: drained once every image captured during the
    // outage is published.
    while ((replicator.status().lastSync?.sequence ?? 0) < target) await sleep(10);
    const drainMs = performance.now() - back;
    return {
      seconds: settings.seconds,
      rate: settings.rate,
      samples,
      captured: during.captures - before.captures,
      coalesced: during.coalesced - before.coalesced,
      drainMs,
      maxSpoolBytes: during.maxSpoolBytes,
    };
  } finally {
    writer.child.kill("SIGTERM");
    await writer.done.catch(() => undefined);
    await replicator.close();
  }
}

// ---- output --------------------------------------------------------------------------------------------

function renderLag(results: LagResult[]): string[] {
  return [
    "## Replication lag: commit → pointer names a snapshot holding it",
    "",
    `A writer process commits at a fixed rate for the run's length (WAL mode, ${PAYLOAD}-byte rows); the ` +
    `replicator runs with its defaults (debounce ${REPLICATOR.debounceMs} ms, max delay ` +
    `${REPLICATOR.maxDelayMs} ms: under a steady stream of commits it captures at least that often).`,
    "",
    ...markdownTable(
      ["store", "commits/s", "commits", "snapshots", "p50 ms", "p99 ms", "max ms"],
      results.map((r) => [
        r.store,
        String(r.rate),
        String(r.commits),
        String(r.snapshots),
        ms(r.p50),
        ms(r.p99),
        ms(r.max),
      ]),
      1,
    ),
  ];
}

function renderWriter(results: WriterResult[]): string[] {
  const rows: string[][] = [];
  for (const r of results) {
    const per = (w: WriterReport) => w.commits / (w.elapsedMs / 1000);
    rows.push([
      `${r.mode}: commits/s`,
      rate(per(r.without)),
      rate(per(r.with)),
      versus(per(r.with), per(r.without)),
    ]);
    rows.push([
      `${r.mode}: longest commit (ms)`,
      ms(r.without.maxMs),
      ms(r.with.maxMs),
      versus(r.with.maxMs, r.without.maxMs, true),
    ]);
    rows.push([
      `${r.mode}: p99 commit (ms)`,
      ms(r.without.p99Ms),
      ms(r.with.p99Ms),
      versus(r.with.p99Ms, r.without.p99Ms, true),
    ]);
  }
  return [
    "## Writer throughput and stalls, with and without the replicator",
    "",
    `A writer process commits as fast as it can (${PAYLOAD}-byte rows); the replicator (in the benchmark's ` +
    "process, directory store) captures as the defaults allow. Snapshots and the longest source hold: " +
    results.map((r) => `${r.mode} ${r.snapshots} snapshots, held ≤ ${r.longestHoldMs} ms`).join("; ") + ".",
    "",
    ...markdownTable(["measure", "without", "with replicator", "with vs without"], rows, 1),
  ];
}

function renderOutage(r: OutageResult): string[] {
  return [
    `## Spool through a ${r.seconds} s store outage (${r.rate} commits/s)`,
    "",
    `Spool bound ${mib(r.maxSpoolBytes)}; ${r.captured} images captured during the outage, ${r.coalesced} ` +
    "coalesced.",
    "",
    ...markdownTable(
      ["after", "pending images", "spool bytes", "spool", "coalesced"],
      r.samples.map((
        s,
      ) => [`${s.atS} s`, String(s.pending), String(s.spoolBytes), mib(s.spoolBytes), String(s.coalesced)]),
      1,
    ),
    "",
    ...markdownTable(["after the store returns", "ms"], [["backlog published (drain)", ms(r.drainMs)]], 1),
  ];
}

// ---- main ----------------------------------------------------------------------------------------------

async function main(): Promise<"writer" | "bench"> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      help: { type: "boolean", default: false },
      writer: { type: "string" },
    },
  });
  if (values.writer !== undefined) {
    await writerMain(JSON.parse(values.writer) as WriterConfig);
    return "writer";
  }
  if (values.help) {
    console.log(USAGE);
    return "bench";
  }
  const only = values.only?.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const unknown = only?.filter((s) => !(SECTIONS as readonly string[]).includes(s)) ?? [];
  if (unknown.length > 0) {
    console.error(`bench:replicate: unknown section "${unknown.join(", ")}"\n${USAGE}`);
    process.exit(2);
  }
  const sections = new Set<Section>((only as Section[] | undefined) ?? SECTIONS);
  const settings = values.quick ? QUICK : FULL;
  const started = performance.now();
  const work = await makeTempDir("bench-replicate");
  const ctx: Context = {
    work,
    progress: process.stderr.isTTY ? (line) => process.stderr.write(`bench:replicate: ${line}\n`) : () => {},
    runs: 0,
  };
  const json: Record<string, unknown> = { bench: "replicate", quick: values.quick, runtime: runtimeName() };
  try {
    if (sections.has("lag") && settings.lag.stores.includes("s3rver")) ctx.s3 = await startS3Server();
    print(header(values.quick, sections));
    if (sections.has("lag")) {
      const results: LagResult[] = [];
      for (const kind of settings.lag.stores) {
        for (const r of settings.lag.rates) {
          results.push(await measureLag(ctx, kind, r, settings.lag.seconds));
        }
      }
      print(renderLag(results));
      json.lag = results;
    }
    if (sections.has("writer")) {
      const results = [];
      for (const mode of ["wal", "delete"] as const) {
        results.push(await measureWriter(ctx, mode, settings.writer.seconds));
      }
      print(renderWriter(results));
      json.writer = results.map((r) => ({
        mode: r.mode,
        commitsPerS: { without: perS(r.without), with: perS(r.with) },
        throughputRatio: perS(r.with) / perS(r.without),
        longestCommitMs: { without: r.without.maxMs, with: r.with.maxMs },
        stallRatio: r.with.maxMs / r.without.maxMs,
        p99CommitMs: { without: r.without.p99Ms, with: r.with.p99Ms },
        snapshots: r.snapshots,
        longestHoldMs: r.longestHoldMs,
      }));
    }
    if (sections.has("outage")) {
      const r = await measureOutage(ctx, settings.outage);
      print(renderOutage(r));
      json.outage = r;
    }
    const totalS = (performance.now() - started) / 1000;
    print([`total wall time ${totalS.toFixed(1)} s`]);
    json.totalS = totalS;
    console.log(JSON.stringify(json));
  } finally {
    await ctx.s3?.stop();
    await removeWorkDir(work, "bench:replicate");
  }
  return "bench";
}

function perS(w: WriterReport): number {
  return w.commits / (w.elapsedMs / 1000);
}

function header(quick: boolean, sections: Set<Section>): string[] {
  const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
  return [
    `# Tessera replication benchmark${quick ? " (--quick: short runs)" : ""}`,
    "",
    `- machine: ${availableParallelism()} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ` +
    `${process.platform} ${release()} ${process.arch}`,
    `- runtime: ${runtimeName()}`,
    "- writer: a separate process (@libsql/client); replicator: the library, in this process; s3rver on " +
    "127.0.0.1 (same host and CPUs)",
    `- sections: ${[...sections].join(", ")}`,
  ];
}

await main();
