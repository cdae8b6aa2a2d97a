/**
 * The end-to-end benchmark. For several database sizes, Tessera's CLI syncs a database of random rows to
 * three store setups and restores it from each: s3rver on loopback, the same s3rver behind a proxy adding
 * a fixed latency to every request (as a distant S3 endpoint would), and a static HTTP server (nginx, else
 * python3's http.server) over the files a directory store holds. Each is set beside what a user would run
 * instead, in the same run: awscli uploading and downloading the whole file, curl downloading it from the
 * static server, and `cp`. Then restore throughput against `--concurrency` on the latency store, and the
 * step-by-step run through library calls (incremental and WAL syncs, cached restores), and lazy replicas
 * against eager ones (first query, full scan, warm point selects), and `tessera serve` under Deno and Bun
 * against the same replica in process (point selects over HTTP by a closed-loop load generator). Every
 * restore and download is checked byte for byte (SHA-256) against the source, every point select against
 * its row; the run fails if one differs. There are no thresholds: it reports times, ratios and requests,
 * writes bench/results/LATEST.md, latest.json and SVG charts, and prints the markdown (or, with --json,
 * the JSON).
 *
 * Usage: deno task bench:e2e [options]     (or: bun scripts/bench.ts [options]); --help lists them.
 *
 * @module
 */

import { execFile } from "node:child_process";
import { mkdir, readFile, unlink } from "node:fs/promises";
import { availableParallelism, cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { promisify } from "node:util";
import { startS3Server } from "../test/_helpers/s3_server.ts";
import { ROOT } from "../test/_helpers/run.ts";
import { makeTempDir } from "../test/_helpers/temp.ts";
import { awsVersion, curlVersion } from "./_bench/alternatives.ts";
import { parseBenchArgs } from "./_bench/e2e_args.ts";
import { measureLazy } from "./_bench/e2e_lazy.ts";
import { measureServer } from "./_bench/e2e_server.ts";
import { type MadeDatabase, measureSize, type Setups } from "./_bench/e2e_sizes.ts";
import { measureSweep } from "./_bench/e2e_sweep.ts";
import { startLatencyStore } from "./_bench/latency_store.ts";
import type { E2eResults, Measurement, Sweep } from "./_bench/results.ts";
import { renderMarkdown, writeResults } from "./_bench/results.ts";
import { removeWorkDir, runtimeName } from "./_bench/run.ts";
import { startStaticHttp } from "./_bench/static_http.ts";
import { measureSteps } from "./_bench/steps.ts";
import { tesseraVersion } from "./_bench/tessera_cli.ts";

const args = parseBenchArgs(process.argv.slice(2));
const progress = process.stderr.isTTY || args.verbose
  ? (line: string) => process.stderr.write(`bench:e2e: ${line}\n`)
  : () => {};

async function main(): Promise<E2eResults> {
  const started = performance.now();
  const date = new Date().toISOString();
  const work = await makeTempDir("bench-e2e");
  const stops: (() => Promise<void>)[] = [];
  try {
    const tessera = await tesseraVersion();
    const s3 = await startS3Server({ buckets: ["tessera-bench"] });
    stops.push(() => s3.stop());
    const latency = await startLatencyStore(s3, args.latencyMs);
    stops.push(() => latency.stop());
    const webRoot = join(work, "www");
    await mkdir(webRoot);
    await mkdir(join(work, "static-server"));
    const web = await startStaticHttp(webRoot, {
      work: join(work, "static-server"),
      kind: args.staticServer,
    });
    stops.push(() => web.stop());
    const setups: Setups = { s3, latency, web, webRoot };
    progress(`static server: ${web.server}`);

    const databases: MadeDatabase[] = [];
    const measurements: Measurement[] = [];
    const sizes = args.sections.has("sizes")
      ? args.sizesMiB
      : args.sections.has("sweep")
      ? [args.sweepMiB]
      : [];
    for (const sizeMiB of sizes) {
      const made = await measureSize(sizeMiB, { setups, work, reps: args.reps, progress });
      databases.push(made.database);
      measurements.push(...made.measurements);
      if (sizeMiB !== args.sweepMiB) await unlink(made.database.path);
    }

    let sweep: Sweep | null = null;
    const swept = databases.find((d) => d.sizeMiB === args.sweepMiB);
    if (args.sections.has("sweep") && swept !== undefined) {
      const awscli = measurements.find((m) =>
        m.op === "restore" && m.setup === "latency" && m.tool === "awscli" && m.sizeMiB === swept.sizeMiB
      );
      sweep = await measureSweep({
        setups,
        database: swept,
        concurrencies: args.concurrencies,
        reps: args.reps,
        work,
        awscliSeconds: awscli?.seconds ?? Number.NaN,
        progress,
      });
    }

    let steps = null;
    if (args.sections.has("steps")) {
      const stepsWork = join(work, "steps");
      await mkdir(stepsWork);
      steps = await measureSteps({ sizeMiB: args.stepsMiB, work: stepsWork, s3, progress });
    }

    let lazy = null;
    if (args.sections.has("lazy")) {
      const lazyWork = join(work, "lazy");
      await mkdir(lazyWork);
      lazy = await measureLazy({ sizeMiB: args.lazyMiB, s3, latency, work: lazyWork, progress });
    }

    let server = null;
    if (args.sections.has("server")) {
      const serverWork = join(work, "server");
      await mkdir(serverWork);
      server = await measureServer({
        rows: args.serverRows,
        seconds: args.serverSeconds,
        concurrencies: args.serverConcurrencies,
        work: serverWork,
        progress,
      });
    }

    return {
      date,
      command: args.command,
      commit: await commit(),
      machine: machine(),
      runtime: runtimeName(),
      versions: {
        tessera,
        awscli: await awsVersion(s3),
        curl: await curlVersion(),
        staticServer: web.server,
      },
      settings: {
        sizesMiB: sizes,
        latencyMs: args.latencyMs,
        reps: args.reps,
        sweepMiB: sweep === null ? null : sweep.sizeMiB,
        concurrencies: args.concurrencies,
      },
      setups: {
        s3: "s3rver",
        latency: `s3rver + ${args.latencyMs} ms per request`,
        static: `${web.server.split(" ")[0]!.replace(/\/.*/, "")} (static files)`,
      },
      databases: databases.map(({ path: _path, name: _name, ...record }) => record),
      measurements,
      sweep,
      steps,
      lazy,
      server,
      totalSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await removeWorkDir(work, "bench:e2e");
  }
}

function machine(): string {
  const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
  return `${availableParallelism()} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ` +
    `${process.platform} ${release()} ${process.arch}`;
}

// Read-only: `git describe --dirty` may rewrite the index; `status` with --no-optional-locks does not.
async function commit(): Promise<string> {
  const git = (gitArgs: string[]) =>
    promisify(execFile)("git", ["--no-optional-locks", ...gitArgs], { cwd: ROOT }).then((r) =>
      r.stdout.trim()
    );
  try {
    const head = await git(["rev-parse", "--short", "HEAD"]);
    const changed = await git(["status", "--porcelain", "--untracked-files=no"]);
    return changed === "" ? head : `${head} (with uncommitted changes)`;
  } catch {
    return "unknown (not a git checkout)";
  }
}

const result = args.render === undefined
  ? await main()
  : JSON.parse(await readFile(args.render, "utf8")) as E2eResults;
if (args.write) {
  const files = await writeResults(args.resultsDir, result);
  progress(`wrote ${files.join(", ")}`);
}
console.log(args.json ? JSON.stringify(result, null, 2) : renderMarkdown(result));
