/**
 * The end-to-end benchmark's command line: its options, their defaults, and checks that exit with a usage
 * message (code 2) on a bad value.
 *
 * @module
 */

import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { ROOT } from "../../test/_helpers/run.ts";
import type { StaticServerKind } from "./static_http.ts";

const SECTIONS = ["sizes", "sweep", "steps", "lazy", "server"] as const;
type Section = typeof SECTIONS[number];

const DEFAULTS = {
  sizes: "16,64,256",
  latency: "20",
  concurrencies: "1,2,4,8,16,32",
  sweep: "64",
  steps: "64",
  lazy: "1024",
  serverRows: "100000",
  serverSeconds: "5",
  serverConcurrencies: "1,8,32",
  reps: "1",
};

/** The usage text `--help` prints. */
export const USAGE = `usage: deno task bench:e2e [options]      (or: bun scripts/bench.ts [options])

  --sizes-mib LIST       database sizes for the restore and sync tables (default ${DEFAULTS.sizes})
  --latency-ms N         latency the proxy adds to every request of the latency store (default ${DEFAULTS.latency})
  --concurrencies LIST   tessera restore --concurrency values for the sweep (default ${DEFAULTS.concurrencies})
  --sweep-mib N          the sweep's database size, one of --sizes-mib (default ${DEFAULTS.sweep}, else the smallest)
  --steps-mib N          database size of the step-by-step run through library calls (default ${DEFAULTS.steps})
  --lazy-mib N           database size of the lazy replica section (default ${DEFAULTS.lazy})
  --server-rows N        rows of the server section's database (default ${DEFAULTS.serverRows})
  --server-seconds N     length of each measured run of the server section (default ${DEFAULTS.serverSeconds})
  --server-concurrencies LIST
                         requests in flight over HTTP in the server section (default ${DEFAULTS.serverConcurrencies})
  --reps N               runs of each timed command; tables show the median (default ${DEFAULTS.reps})
  --only LIST            some of: ${SECTIONS.join(",")} (default all)
  --static-server KIND   auto (nginx if /usr/sbin/nginx exists, else python3), nginx or python
  --results DIR          where LATEST.md, latest.json and the charts go (default bench/results)
  --no-write             write no files, only print
  --render FILE          measure nothing: write LATEST.md and the charts again from a latest.json
  --json                 print the results as JSON instead of markdown
  --verbose              print progress even when stderr is not a terminal`;

/** The settings of one run. */
export interface BenchArgs {
  sizesMiB: number[];
  latencyMs: number;
  concurrencies: number[];
  sweepMiB: number;
  stepsMiB: number;
  lazyMiB: number;
  serverRows: number;
  serverSeconds: number;
  serverConcurrencies: number[];
  reps: number;
  sections: Set<Section>;
  staticServer: StaticServerKind;
  resultsDir: string;
  write: boolean;
  /** A latest.json to render again instead of measuring. */
  render: string | undefined;
  json: boolean;
  verbose: boolean;
  /** How to run this again: the task and the arguments given. */
  command: string;
}

/** Parses `argv`; prints the usage and exits for `--help` (0) or a bad option (2). */
export function parseBenchArgs(argv: string[]): BenchArgs {
  let values;
  try {
    values = parseArgs({
      args: argv,
      options: {
        "sizes-mib": { type: "string", default: DEFAULTS.sizes },
        "latency-ms": { type: "string", default: DEFAULTS.latency },
        concurrencies: { type: "string", default: DEFAULTS.concurrencies },
        "sweep-mib": { type: "string" },
        "steps-mib": { type: "string", default: DEFAULTS.steps },
        "lazy-mib": { type: "string", default: DEFAULTS.lazy },
        "server-rows": { type: "string", default: DEFAULTS.serverRows },
        "server-seconds": { type: "string", default: DEFAULTS.serverSeconds },
        "server-concurrencies": { type: "string", default: DEFAULTS.serverConcurrencies },
        reps: { type: "string", default: DEFAULTS.reps },
        only: { type: "string", default: SECTIONS.join(",") },
        "static-server": { type: "string", default: "auto" },
        results: { type: "string", default: join(ROOT, "bench", "results") },
        "no-write": { type: "boolean", default: false },
        render: { type: "string" },
        json: { type: "boolean", default: false },
        verbose: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    }).values;
  } catch (error) {
    return usageError((error as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const sizesMiB = list(values["sizes-mib"], "--sizes-mib");
  const only = values.only.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const unknown = only.filter((s) => !(SECTIONS as readonly string[]).includes(s));
  if (unknown.length > 0) usageError(`--only: unknown section "${unknown.join(", ")}"`);
  const sweepMiB = values["sweep-mib"] === undefined
    ? (sizesMiB.includes(Number(DEFAULTS.sweep)) ? Number(DEFAULTS.sweep) : Math.min(...sizesMiB))
    : whole(values["sweep-mib"], "--sweep-mib", 1);
  if (only.includes("sizes") && !sizesMiB.includes(sweepMiB)) {
    usageError(`--sweep-mib ${sweepMiB} is not one of --sizes-mib ${sizesMiB.join(",")}`);
  }
  const staticServer = values["static-server"];
  if (!["auto", "nginx", "python"].includes(staticServer)) {
    usageError(`--static-server takes auto, nginx or python, not "${staticServer}"`);
  }
  const latencyMs = Number(values["latency-ms"]);
  if (!Number.isFinite(latencyMs) || latencyMs < 0) usageError("--latency-ms takes a number ≥ 0");
  const task = "Deno" in globalThis ? "deno task bench:e2e" : "bun scripts/bench.ts";
  return {
    sizesMiB,
    latencyMs,
    concurrencies: list(values.concurrencies, "--concurrencies"),
    sweepMiB,
    stepsMiB: whole(values["steps-mib"], "--steps-mib", 1),
    lazyMiB: whole(values["lazy-mib"], "--lazy-mib", 1),
    serverRows: whole(values["server-rows"], "--server-rows", 100),
    serverSeconds: whole(values["server-seconds"], "--server-seconds", 1),
    serverConcurrencies: list(values["server-concurrencies"], "--server-concurrencies"),
    reps: whole(values.reps, "--reps", 1),
    sections: new Set(only as Section[]),
    staticServer: staticServer as StaticServerKind,
    resultsDir: values.results,
    write: !values["no-write"],
    render: values.render,
    json: values.json,
    verbose: values.verbose,
    // --verbose changes nothing measured, so the command to run again leaves it out.
    command: [task, ...argv.filter((a) => a !== "--verbose")].join(" "),
  };
}

function list(text: string, option: string): number[] {
  const numbers = text.split(",").map((s) => whole(s.trim(), option, 1));
  if (numbers.length === 0) usageError(`${option} takes a comma-separated list`);
  return [...new Set(numbers)].sort((a, b) => a - b);
}

function whole(text: string, option: string, min: number): number {
  const n = Number(text);
  if (text === "" || !Number.isInteger(n) || n < min) {
    usageError(`${option} takes whole numbers ≥ ${min}, not "${text}"`);
  }
  return n;
}

function usageError(message: string): never {
  console.error(`bench:e2e: ${message}\n${USAGE}`);
  process.exit(2);
}
