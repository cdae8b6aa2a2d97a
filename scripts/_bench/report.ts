/**
 * The benchmark's results and their text rendering: one table per store and direction, each Tessera step
 * beside the alternative measured in the same run, as a ratio.
 *
 * @module
 */

import type { SyncReport } from "../../src/write/sync.ts";
import type { StoreCounts } from "./counting_store.ts";
import type { ManifestGrowth } from "./manifest_growth.ts";

/** A Tessera step's alternative: what it is and how long it took in this run. */
export interface Alternative {
  name: string;
  seconds: number;
}

/** One timed sync. */
export interface SyncStep {
  store: string;
  step: string;
  seconds: number;
  alternative: Alternative;
  /** Tessera's time divided by the alternative's: below 1, Tessera was faster. */
  ratio: number;
  noop: boolean;
  chunks: SyncReport["chunks"];
  bytes: SyncReport["bytes"];
  requests: StoreCounts;
}

/** One timed restore, verified against the source file. */
export interface RestoreStep {
  store: string;
  step: string;
  seconds: number;
  alternative: Alternative;
  ratio: number;
  /** Data chunks restoreImage asked its chunk source for. */
  chunksFetched: number;
  requests: StoreCounts;
  sha256: string;
  /** Set once the restored file's SHA-256 was compared with the source file's and found equal. */
  sha256MatchesSource: boolean;
}

/** Everything one run measured. */
export interface BenchResult {
  runtime: string;
  cpus: number;
  sizeMiBRequested: number;
  database: {
    rows: number;
    pageSize: number;
    pages: number;
    bytes: number;
    journalMode: string;
    chunkSize: number;
    chunks: number;
  };
  awscli: string;
  alternatives: {
    awsOneByteUpload: number;
    awsUpload: number;
    awsUploadUpdated: number;
    awsDownload: number;
    cp: number;
    cpFsync: number;
  };
  sync: SyncStep[];
  restore: RestoreStep[];
  manifestAt1GiB: ManifestGrowth;
  totalSeconds: number;
}

/** The result as the text a person reads. */
export function renderText(r: BenchResult): string {
  const db = r.database;
  const alt = r.alternatives;
  const out: string[] = [
    `Tessera end-to-end benchmark: ${r.runtime}, ${r.cpus} CPUs, ${r.awscli}, s3rver on 127.0.0.1 (same host and CPUs)`,
    `database: ${mib(db.bytes)} (${r.sizeMiBRequested} MiB asked), ${
      int(db.pages)
    } pages of ${db.pageSize} ` +
    `bytes, ${int(db.rows)} random rows, journal_mode=${db.journalMode}; ${int(db.chunks)} chunks of ` +
    `${db.chunkSize / 1024} KiB`,
    "ratio = Tessera's time / the alternative's time in this run (below 1: Tessera faster). awscli and cp",
    "have no incremental mode: every sync is set against copying the whole file, every restore likewise.",
    "",
    "Alternatives",
    ...table(["", "time", "note"], [
      ["awscli upload (aws s3 cp FILE s3://…)", secs(alt.awsUpload), `${mib(db.bytes)} up`],
      ["awscli upload after the 1-row update", secs(alt.awsUploadUpdated), `${mib(db.bytes)} up`],
      ["awscli download (aws s3 cp s3://… FILE)", secs(alt.awsDownload), "sha256 = source"],
      ["awscli fixed cost (1-byte upload)", secs(alt.awsOneByteUpload), "process start, Python"],
      ["cp + fsync (node:fs copyFile)", secs(alt.cpFsync), "durable, as Tessera is"],
      ["cp alone", secs(alt.cp), "page cache only"],
    ]),
  ];
  for (const store of unique(r.sync.map((s) => s.store))) {
    const steps = r.sync.filter((s) => s.store === store);
    out.push("", `Sync to ${store}`);
    out.push(...table(
      [
        "step",
        "time",
        "alternative",
        "ratio",
        "chunks read",
        "up",
        "data up",
        "manifest up",
        "of file",
        "requests",
      ],
      steps.map((s) => [
        s.step,
        secs(s.seconds),
        `${s.alternative.name} ${secs(s.alternative.seconds)}`,
        ratio(s.ratio),
        `${int(s.chunks.read)}/${int(s.chunks.total)}`,
        int(s.chunks.uploaded),
        bytes(s.bytes.data),
        bytes(s.bytes.manifest),
        pct((s.bytes.data + s.bytes.manifest) / db.bytes),
        requests(s.requests),
      ]),
    ));
  }
  for (const store of unique(r.restore.map((s) => s.store))) {
    const steps = r.restore.filter((s) => s.store === store);
    out.push("", `Restore from ${store}`);
    out.push(...table(
      ["step", "time", "alternative", "ratio", "chunk GETs", "other GETs", "down", "sha256 vs source"],
      steps.map((s) => [
        s.step,
        secs(s.seconds),
        `${s.alternative.name} ${secs(s.alternative.seconds)}`,
        ratio(s.ratio),
        int(s.requests.chunkGets),
        int(s.requests.otherGets),
        bytes(s.requests.bytesDown),
        s.sha256MatchesSource ? `equal (${s.sha256.slice(0, 12)}…)` : "NOT CHECKED",
      ]),
    ));
  }
  const m = r.manifestAt1GiB;
  out.push(
    "",
    `Format at 1 GiB, computed with the real encoders (${int(m.chunks)} chunks of ${
      m.chunkSize / 1024
    } KiB, ` +
      `${m.indexChunks} index chunks):`,
    "a 1-page change uploads the changed data chunk and chunk 0 (64 KiB, inside the manifest), plus",
    ...table(["", "bytes"], [
      ["manifest besides chunk 0", int(m.manifestBesidesChunk0)],
      [`changed index chunks (${m.changedIndexChunks} of ${m.indexChunks})`, int(m.changedIndexChunkBytes)],
      ["pointer", int(m.pointerBytes)],
      ["total", int(m.total)],
      ["(an inline id list instead: manifest besides chunk 0)", int(m.inlineManifestBesidesChunk0)],
    ]),
    "",
    `total wall time ${secs(r.totalSeconds)}`,
  );
  return out.join("\n");
}

function table(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) =>
    "  " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  return [line(headers), ...rows.map(line)].map((l) => l.trimEnd());
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

/** Seconds as "850 ms" below a second (rounded so 0.9996 s reads "1.00 s", not "1000 ms"), else "2.40 s". */
export function secs(s: number): string {
  return s < 0.9995 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`;
}

function ratio(x: number): string {
  const v = x >= 1 ? x : 1 / x;
  return `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)}x ${x >= 1 ? "slower" : "faster"}`;
}

function int(n: number): string {
  return n.toLocaleString("en-US");
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

function bytes(n: number): string {
  if (n < 10 * 1024) return `${int(n)} B`;
  if (n < 10 * 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return mib(n);
}

function pct(x: number): string {
  return x === 0 ? "0%" : x < 0.001 ? `${(x * 100).toFixed(3)}%` : `${(x * 100).toFixed(1)}%`;
}

function requests(c: StoreCounts): string {
  const parts = [
    c.chunkGets + c.otherGets > 0 ? `${int(c.chunkGets + c.otherGets)} GET` : "",
    c.heads > 0 ? `${int(c.heads)} HEAD` : "",
    c.puts > 0 ? `${int(c.puts)} PUT` : "",
  ].filter((p) => p !== "");
  return parts.length > 0 ? parts.join(", ") : "none";
}
