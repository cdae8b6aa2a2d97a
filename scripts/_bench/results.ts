/**
 * The end-to-end benchmark's results: their shape, the markdown a person reads (`LATEST.md`), and the
 * files a run leaves in `bench/results/`: `LATEST.md`, `latest.json` and the charts as SVG.
 *
 * @module
 */

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { restoreByConcurrencyChart, restoreBySizeChart } from "./e2e_charts.ts";
import { restoreTable, summaryTable, sweepTable, syncTable } from "./e2e_tables.ts";
import { type BenchResult, renderText, secs } from "./report.ts";
import { mib } from "./replica_report.ts";
import { type LazyBench, lazyMarkdown } from "./e2e_lazy.ts";
import { type ServerBench, serverMarkdown } from "./e2e_server.ts";

/** The store setups: s3rver on loopback, s3rver behind the latency proxy, a static HTTP server. */
export type SetupKey = "s3" | "latency" | "static";

/** What was timed: Tessera's CLI, or what a user would run instead. */
export type Tool = "tessera" | "awscli" | "curl" | "cp";

/** One timed operation at one database size: the median of its repetitions. */
export interface Measurement {
  /** `sync`: store the database; `restore`: get it back whole; `copy`: `cp` of the file, the local bound. */
  op: "sync" | "restore" | "copy";
  setup: SetupKey | "local";
  tool: Tool;
  sizeMiB: number;
  /** The database file's size. */
  bytes: number;
  seconds: number;
  /** Every repetition's time, in the order run. */
  samples: number[];
  /** Requests the latency proxy received (the latency setup only). */
  requests?: number;
  /** Chunks the sync uploaded or the restore fetched, as the CLI reported. */
  chunks?: number;
}

/** A database the run made. */
export interface DatabaseRecord {
  sizeMiB: number;
  bytes: number;
  rows: number;
  pageSize: number;
  sha256: string;
}

/** One concurrency of the sweep. */
export interface SweepPoint {
  concurrency: number;
  seconds: number;
  samples: number[];
  requests: number;
}

/** Restore time against `--concurrency`, on one setup and size. */
export interface Sweep {
  setup: SetupKey;
  sizeMiB: number;
  bytes: number;
  points: SweepPoint[];
  /** awscli's download of the same file from the same store. */
  awscliSeconds: number;
}

/** Everything one run of `deno task bench:e2e` measured, and where. */
export interface E2eResults {
  /** ISO 8601, when the run started. */
  date: string;
  /** The command line, to run it again. */
  command: string;
  /** The checkout's commit (and whether it had changes), as `git describe` says. */
  commit: string;
  machine: string;
  runtime: string;
  versions: { tessera: string; awscli: string; curl: string; staticServer: string };
  settings: {
    sizesMiB: number[];
    latencyMs: number;
    reps: number;
    sweepMiB: number | null;
    concurrencies: number[];
  };
  /** Each setup's name in tables and charts. */
  setups: Record<SetupKey, string>;
  databases: DatabaseRecord[];
  measurements: Measurement[];
  sweep: Sweep | null;
  /** The step-by-step run through library calls, when it ran. */
  steps: BenchResult | null;
  /** Lazy replicas against eager ones, when the section ran (absent from older runs). */
  lazy?: LazyBench | null;
  /** `tessera serve` over HTTP against the replica in process, when the section ran (absent from older
   * runs). */
  server?: ServerBench | null;
  totalSeconds: number;
}

/** The chart files {@linkcode writeResults} writes, by role. */
export const CHART_FILES = { bySize: "restore-vs-size.svg", byConcurrency: "restore-vs-concurrency.svg" };

/**
 * Writes `LATEST.md`, `latest.json` and the charts into `dir` (created if missing) and returns their paths.
 *
 * @example
 * ```ts
 * import { writeResults } from "./results.ts";
 * declare const results: import("./results.ts").E2eResults;
 * console.log(await writeResults("bench/results", results));
 * ```
 */
export async function writeResults(dir: string, r: E2eResults): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: [string, string][] = [
    ["LATEST.md", renderMarkdown(r)],
    ["latest.json", `${JSON.stringify(r, null, 2)}\n`],
  ];
  if (r.databases.length > 0) files.push([CHART_FILES.bySize, restoreBySizeChart(r)]);
  const byConcurrency = restoreByConcurrencyChart(r);
  if (byConcurrency !== null) files.push([CHART_FILES.byConcurrency, byConcurrency]);
  for (const [name, text] of files) await writeFile(join(dir, name), text);
  return files.map(([name]) => join(dir, name));
}

/** The results as the markdown of `LATEST.md`. */
export function renderMarkdown(r: E2eResults): string {
  const s = r.settings;
  const out = [
    "# Tessera end-to-end benchmark: latest results",
    "",
    `Measured ${r.date.replace("T", " ").replace(/\.\d+Z$/, " UTC")} at commit ${r.commit}, with`,
    `\`${r.command}\` (${secs(r.totalSeconds)} in all).`,
    "",
    `- machine: ${r.machine}`,
    `- runtime: ${r.runtime}`,
    `- Tessera: ${r.versions.tessera}, the CLI run as a user runs it, one process per command, timed from ` +
    "spawn to exit (the runtime's start included, as awscli's and curl's are); restores are cold (no cache) " +
    "at the CLI's default `--concurrency` unless the table says otherwise",
    `- alternatives: ${r.versions.awscli} (\`aws s3 cp\`), ${r.versions.curl} (\`curl -o\`), \`cp\` ` +
    "(node:fs copyFile, then fsync)",
    `- store setups, all on this machine:`,
    `  - **${r.setups.s3}**: s3rver on 127.0.0.1; a request costs well under a millisecond`,
    `  - **${r.setups.latency}**: the same s3rver behind a proxy that holds every request ${s.latencyMs} ms ` +
    "before forwarding it, as a distant S3 endpoint's round trip would",
    `  - **${r.setups.static}**: ${r.versions.staticServer} serving the files a \`tessera sync\` to a ` +
    "directory wrote, and the whole database file for curl: the upper bound for HTTP here",
    "- every restore and download was hashed (SHA-256) and equals the source file; a difference fails the run",
    "- requests: what reached the latency proxy (so the latency setup only), Tessera's / the alternative's",
    `- times are the median of ${s.reps} run${
      s.reps === 1 ? "" : "s"
    }; Tessera's restores and \`cp\` fsync ` +
    "what they write, awscli and curl do not",
    "",
  ];
  if (r.databases.length > 0) {
    out.push(
      "## Summary",
      "",
      ...summaryTable(r),
      "",
      "## Cold restore of the whole database",
      "",
      `![Restore time against database size, one panel per store setup](${CHART_FILES.bySize})`,
      "",
      ...restoreTable(r),
      "",
    );
  }
  if (r.sweep !== null) {
    out.push(
      `## Restore throughput against --concurrency (${mib(r.sweep.bytes)}, ${r.setups[r.sweep.setup]})`,
      "",
      `With ${s.latencyMs} ms before every request, a restore's speed is set by how many chunks are in flight.`,
      "",
      `![Restore throughput against --concurrency](${CHART_FILES.byConcurrency})`,
      "",
      ...sweepTable(r.sweep),
      "",
    );
  }
  if (r.databases.length > 0) out.push("## Full sync against a whole-file upload", "", ...syncTable(r), "");
  if (r.steps !== null) {
    out.push(
      `## Step by step (library calls, ${r.steps.sizeMiBRequested} MiB, s3rver and a local directory)`,
      "",
      "Incremental syncs, a WAL database, cached restores and the manifest at 1 GiB; every step beside the",
      "whole-file alternative.",
      "",
      "```text",
      renderText(r.steps),
      "```",
      "",
    );
  }
  if (r.lazy) {
    out.push(`## Lazy replicas (${r.lazy.sizeMiB} MiB)`, "", ...lazyMarkdown(r.lazy), "");
  }
  if (r.server) {
    out.push("## Serving over HTTP (point selects)", "", ...serverMarkdown(r.server), "");
  }
  out.push(
    "## Reproduce",
    "",
    "```sh",
    "npm install                               # Deno, Bun and s3rver, as dev dependencies",
    "apt-get install awscli curl nginx-light   # without nginx, python3's http.server serves instead",
    ...(/ --/.test(r.command)
      ? [
        "deno task bench:e2e                       # the default settings",
        r.command,
        "```",
        "",
        "The last line is this run's.",
      ]
      : ["deno task bench:e2e                       # this run: the default settings", "```", ""]),
    "It writes this file, `latest.json` (with every sample) and the charts into `bench/results/`;",
    "`deno task bench:e2e --help` lists the options.",
    "",
  );
  return out.join("\n");
}
