/**
 * The end-to-end benchmark's server section: point selects by primary key on a database of random-key
 * rows (written by the sqlite3 CLI, synced to a local directory store), read five ways in one run:
 *
 * - a replica in this process (the wasm engine, as `tessera serve` opens it): the baseline;
 * - the server's app on that replica, called in this process with no socket (`app.fetch`): what handling
 *   a request costs before the network and HTTP stack do;
 * - @libsql/client on the database file;
 * - `tessera serve` as a separate process, under Deno and then under Bun, read over HTTP by the closed-loop
 *   load generator of http_load.ts at each concurrency, with `fetch` posting Hrana 2 pipeline JSON and with
 *   @libsql/client over `http:`.
 *
 * Every answer is compared with the row it must be; a difference fails the run. The server process and
 * this one share the machine's cores, so the CPU each used is recorded beside its throughput.
 *
 * @module
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { promisify } from "node:util";
import { createClient } from "@libsql/client";
import { openReplica } from "../../src/config/replica.ts";
import { createApp } from "../../src/server/app.ts";
import { openStore } from "../../src/store/open.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { ROOT } from "../../test/_helpers/run.ts";
import { type LoadResult, runLoad, type Send } from "./http_load.ts";
import { int, markdownTable, randomKeys } from "./replica_report.ts";
import { runtimeName } from "./run.ts";

const exec = promisify(execFile);
const NAME = "points";
const POINT_SQL = "SELECT id, n, s FROM t WHERE id = ?";
const WARMUP_MS = 1000;
/** Linux reports a process's CPU time in ticks of 1/100 s (`getconf CLK_TCK`). */
const TICKS_PER_SECOND = 100;
const BINARIES = { deno: "node_modules/deno/deno", bun: "node_modules/.bin/bun" } as const;

/** A runtime `tessera serve` ran under. */
export type ServerRuntime = keyof typeof BINARIES;

/** One measured target at one concurrency. */
export interface ServerRun
  extends Pick<LoadResult, "concurrency" | "requests" | "seconds" | "perSecond" | "p50Ms" | "p99Ms"> {
  /** Where the statements ran: in this process, or in a `tessera serve` process under that runtime. */
  server: "in-process" | ServerRuntime;
  /** `replica`: `Replica.execute`; `app`: the server's app called with a `Request`, no socket; `file`:
   * @libsql/client on the file; `fetch`: Hrana JSON by hand; `libsql`: @libsql/client over `http:`. */
  client: "replica" | "app" | "file" | "fetch" | "libsql";
  /** CPU the server process used while measured, in cores (1 = one core all the time); null in-process. */
  serverCores: number | null;
  /** CPU this process (the load generator, or the in-process engine) used, in cores. */
  generatorCores: number;
  /** CPU every other process of the machine used meanwhile, in cores (others' work skews the figures);
   * null where /proc/stat is missing. */
  otherCores: number | null;
}

/** What the server section measured. */
export interface ServerBench {
  rows: number;
  bytes: number;
  /** Each run's measured length; a warm-up of {@linkcode WARMUP_MS} precedes it. */
  secondsPerRun: number;
  cores: number;
  /** The load generator's runtime, and each server's. */
  versions: { generator: string } & Record<ServerRuntime, string>;
  /** Answers compared with the expected row. */
  checked: number;
  runs: ServerRun[];
  totalSeconds: number;
}

/** Options of {@linkcode measureServer}. */
export interface ServerContext {
  rows: number;
  seconds: number;
  concurrencies: number[];
  work: string;
  progress: (line: string) => void;
}

/** The row `id` holds: its columns are computed from the id, so any answer can be checked on the spot. */
function expected(id: number): { n: number; s: string } {
  return { n: (id * 7919) % 1000003, s: `row-${String(id).padStart(8, "0")}` };
}

/** Throws unless `cells` (id, n, s, as any client returns them) are row `id`'s. */
function checkRow(id: number, cells: ArrayLike<unknown> | undefined): void {
  const want = expected(id);
  if (
    cells === undefined || Number(cells[0]) !== id || Number(cells[1]) !== want.n || cells[2] !== want.s
  ) {
    const got = cells === undefined ? "no row" : Array.from(cells, String).join("|");
    throw new Error(`bench:e2e: the server section read ${got} for id ${id}, not ${id}|${want.n}|${want.s}`);
  }
}

/** This process's CPU seconds so far. */
function ownCpu(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** Process `pid`'s CPU seconds so far, from /proc; null where there is none. */
function processCpu(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command's closing parenthesis: state is the first, utime the 12th, stime the 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/** CPU seconds the whole machine spent busy so far (all cores), from /proc/stat; null where there is none. */
function machineCpu(): number | null {
  try {
    const [user, nice, system, _idle, _iowait, irq, softirq, steal] = readFileSync("/proc/stat", "utf8")
      .split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    return (user! + nice! + system! + irq! + softirq! + steal!) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/** A `tessera serve` process, listening. */
interface ServerProcess {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts `tessera serve --store … --db NAME --public --port 0` under `runtime` and waits until it listens. */
async function startServer(runtime: ServerRuntime, store: string): Promise<ServerProcess> {
  const binary = join(ROOT, BINARIES[runtime]);
  if (!existsSync(binary)) throw new Error(`bench:e2e: no ${binary}: run npm install first`);
  const cli = [
    "src/cli/main.ts",
    "serve",
    "--store",
    store,
    "--db",
    NAME,
    "--public",
    "--port",
    "0",
    "--json",
  ];
  const child: ChildProcess = spawn(binary, runtime === "deno" ? ["run", "-A", ...cli] : cli, {
    cwd: ROOT,
    // No TESSERA_CONFIG: its caches would serve differently from the in-process replica.
    env: { ...process.env, NO_COLOR: "1", TESSERA_CONFIG: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (text: string) => (err += text));
  const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const fail = (why: string) =>
      reject(new Error(`bench:e2e: tessera serve under ${runtime} ${why}:\n${err}`));
    const timer = setTimeout(() => fail("did not listen within 60 s"), 60_000);
    child.stdout!.on("data", (text: string) => {
      out += text;
      const line = out.split("\n").find((l) => l.includes('"event":"listening"'));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { url: string }).url);
      }
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      fail(`exited (code ${code}) before listening`);
    });
  });
  return {
    url,
    pid: child.pid!,
    async stop() {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** The first line `binary --version` prints. */
async function version(binary: string): Promise<string> {
  const { stdout } = await exec(join(ROOT, binary), ["--version"]);
  return stdout.trim().split("\n")[0]!;
}

/** The Hrana 2 pipeline @libsql/client posts for one statement on a new stream: execute, then close. */
function pipelineBody(id: number): string {
  return JSON.stringify({
    requests: [
      {
        type: "execute",
        stmt: {
          sql: POINT_SQL,
          args: [{ type: "integer", value: String(id) }],
          named_args: [],
          want_rows: true,
        },
      },
      { type: "close" },
    ],
  });
}

interface HranaCell {
  type: string;
  value?: string | number;
}
interface HranaResponse {
  results: { type: string; response?: { result?: { rows: HranaCell[][] } }; error?: { message: string } }[];
}

/** Checks a Hrana pipeline's answer to {@linkcode pipelineBody}`(id)`. */
async function checkPipeline(id: number, response: Response): Promise<void> {
  if (!response.ok) throw new Error(`The pipeline answered ${response.status}: ${await response.text()}`);
  const first = ((await response.json()) as HranaResponse).results[0];
  if (first?.type !== "ok") throw new Error(`The pipeline failed: ${first?.error?.message ?? "no result"}`);
  checkRow(id, first.response?.result?.rows[0]?.map((cell) => cell.value));
}

const JSON_HEADERS = { "content-type": "application/json" };

/** Builds the database, syncs it, and reads it in process, from the file and over HTTP. */
/**
 * Writes the point-select database with the sqlite3 CLI: `rows` rows of `t (id, n, s, pad)`, where `s` is
 * `row-%08d` of the id and a 100-byte random blob nobody selects gives the table a realistic size and page
 * count.
 */
export async function writePointsDatabase(path: string, rows: number): Promise<void> {
  await exec("sqlite3", [
    path,
    `PRAGMA page_size = 4096;
     CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, s TEXT NOT NULL, pad BLOB NOT NULL);
     WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${rows})
     INSERT INTO t SELECT i, (i * 7919) % 1000003, printf('row-%08d', i), randomblob(100) FROM c;`,
  ]);
}

export async function measureServer(context: ServerContext): Promise<ServerBench> {
  const { rows, seconds, concurrencies, work, progress } = context;
  const started = performance.now();
  const source = join(work, "points.db");
  progress(`server: writing ${int(rows)} rows with the sqlite3 CLI`);
  await writePointsDatabase(source, rows);
  const bytes = (await stat(source)).size;
  // The checks compare with expected(); make sure it is what SQLite wrote, on a spread of ids.
  const sample = Array.from({ length: 50 }, (_, i) => 1 + Math.floor((i * (rows - 1)) / 49));
  const written = (await exec("sqlite3", [
    "-separator",
    "\t",
    source,
    `SELECT id, n, s FROM t WHERE id IN (${sample.join(",")}) ORDER BY id`,
  ])).stdout.trim().split("\n");
  written.forEach((line, i) => checkRow(sample[i]!, line.split("\t")));

  const storeUrl = `file://${join(work, "store")}`;
  progress("server: syncing it to a local directory store");
  await syncDatabase(source, {
    stores: [openStore(storeUrl)],
    hostname: "bench",
    name: NAME,
    spoolDir: join(work, "spool"),
  });

  const keys = randomKeys(1 << 16, rows, 7);
  const key = (index: number) => keys[index % keys.length]!;
  let checked = 0;
  const results: ServerRun[] = [];
  const measure = async (
    run: Pick<ServerRun, "server" | "client">,
    concurrency: number,
    send: Send,
    serverPid?: number,
  ) => {
    const counted: Send = async (index) => {
      await send(index);
      checked++;
    };
    const warm = await runLoad(counted, { concurrency, durationMs: WARMUP_MS });
    const cpu0 = {
      own: ownCpu(),
      server: serverPid === undefined ? null : processCpu(serverPid),
      machine: machineCpu(),
    };
    const load: LoadResult = await runLoad(counted, {
      concurrency,
      durationMs: seconds * 1000,
      firstIndex: warm.nextIndex,
    });
    const serverCpu = serverPid === undefined ? null : processCpu(serverPid);
    const machine = machineCpu();
    const cores = (cpu: number) => cpu / load.seconds;
    const own = cores(ownCpu() - cpu0.own);
    const server = serverCpu === null || cpu0.server === null ? null : cores(serverCpu - cpu0.server);
    results.push({
      ...run,
      concurrency,
      requests: load.requests,
      seconds: load.seconds,
      perSecond: load.perSecond,
      p50Ms: load.p50Ms,
      p99Ms: load.p99Ms,
      serverCores: server,
      generatorCores: own,
      // Clock ticks round each process's share down or up: a small negative rest means none.
      otherCores: machine === null || cpu0.machine === null
        ? null
        : Math.max(0, cores(machine - cpu0.machine) - own - (server ?? 0)),
    });
    progress(
      `server: ${run.server} ${run.client} ×${concurrency}: ${int(load.perSecond)}/s, ` +
        `p50 ${load.p50Ms.toFixed(3)} ms, p99 ${load.p99Ms.toFixed(3)} ms`,
    );
  };

  // The replica as the server opens it: the wasm engine, integers as bigint, the default load and poller.
  progress("server: the replica in this process");
  const replica = await openReplica(NAME, {
    store: openStore(storeUrl),
    engine: "wasm",
    intMode: "bigint",
    env: { ...process.env, TESSERA_CONFIG: "" },
  });
  try {
    await measure({ server: "in-process", client: "replica" }, 1, async (i) => {
      const id = key(i);
      checkRow(id, (await replica.execute({ sql: POINT_SQL, args: [id] })).rows[0]);
    });
    // The same replica behind the server's app; shutting the app down closes it.
    const app = createApp({ databases: { [NAME]: { replica, public: true } } });
    try {
      await measure({ server: "in-process", client: "app" }, 1, async (i) => {
        const id = key(i);
        const request = new Request(`http://bench/${NAME}/v2/pipeline`, {
          method: "POST",
          headers: JSON_HEADERS,
          body: pipelineBody(id),
        });
        await checkPipeline(id, await app.fetch(request));
      });
    } finally {
      await app.shutdown({ timeoutMs: 0 });
    }
  } finally {
    replica.close();
  }

  progress("server: @libsql/client on the file");
  const file = createClient({ url: `file:${source}` });
  try {
    await measure({ server: "in-process", client: "file" }, 1, async (i) => {
      const id = key(i);
      checkRow(id, (await file.execute({ sql: POINT_SQL, args: [id] })).rows[0]);
    });
  } finally {
    file.close();
  }

  for (const runtime of Object.keys(BINARIES) as ServerRuntime[]) {
    progress(`server: tessera serve under ${runtime}`);
    const server = await startServer(runtime, storeUrl);
    try {
      const pipeline = `${server.url}/${NAME}/v2/pipeline`;
      const byFetch: Send = async (i) => {
        const id = key(i);
        await checkPipeline(
          id,
          await fetch(pipeline, { method: "POST", headers: JSON_HEADERS, body: pipelineBody(id) }),
        );
      };
      for (const concurrency of concurrencies) {
        await measure({ server: runtime, client: "fetch" }, concurrency, byFetch, server.pid);
      }
      for (const concurrency of concurrencies) {
        const client = createClient({ url: `${server.url}/${NAME}/` });
        try {
          await measure({ server: runtime, client: "libsql" }, concurrency, async (i) => {
            const id = key(i);
            checkRow(id, (await client.execute({ sql: POINT_SQL, args: [id] })).rows[0]);
          }, server.pid);
        } finally {
          client.close();
        }
      }
    } finally {
      await server.stop();
    }
  }

  return {
    rows,
    bytes,
    secondsPerRun: seconds,
    cores: availableParallelism(),
    versions: {
      generator: runtimeName(),
      deno: await version(BINARIES.deno),
      bun: `bun ${await version(BINARIES.bun)}`,
    },
    checked,
    runs: results,
    totalSeconds: (performance.now() - started) / 1000,
  };
}

const LABELS: Record<ServerRun["client"], string> = {
  replica: "Replica.execute",
  app: "app.fetch, Hrana 2 JSON, no socket",
  file: "@libsql/client, file:",
  fetch: "fetch, Hrana 2 JSON",
  libsql: "@libsql/client, http:",
};

/** Milliseconds with three significant digits (at least one decimal). */
function millis(n: number): string {
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n >= 1 ? n.toFixed(2) : n.toFixed(3);
}

/** The section's markdown: the table, then what it was measured on. */
export function serverMarkdown(b: ServerBench): string[] {
  const baseline = b.runs.find((r) => r.server === "in-process" && r.client === "replica")?.perSecond ?? NaN;
  const cores = (n: number | null) => (n === null ? "–" : `${(n * 100).toFixed(0)}%`);
  const table = markdownTable(
    [
      "server",
      "client",
      "in flight",
      "requests/s",
      "p50 ms",
      "p99 ms",
      "vs in-process",
      "server CPU",
      "load CPU",
      "other CPU",
    ],
    b.runs.map((r) => [
      r.server === "in-process" ? "in this process" : `tessera serve (${r.server})`,
      LABELS[r.client],
      String(r.concurrency),
      int(r.perSecond),
      millis(r.p50Ms),
      millis(r.p99Ms),
      `${(r.perSecond / baseline).toFixed(2)}x`,
      cores(r.serverCores),
      cores(r.generatorCores),
      cores(r.otherCores ?? null),
    ]),
    2,
  );
  const best = (["deno", "bun"] as const).map((runtime) => {
    const top = b.runs.filter((r) => r.server === runtime).sort((x, y) => y.perSecond - x.perSecond)[0];
    return top === undefined
      ? `${runtime}: not measured`
      : `${runtime} ${int(top.perSecond)}/s (${LABELS[top.client]}, ${top.concurrency} in flight), ` +
        `${(top.perSecond / baseline).toFixed(2)}x in-process`;
  });
  return [
    `${int(b.rows)} rows (${
      (b.bytes / 1048576).toFixed(1)
    } MiB, written by the sqlite3 CLI) synced to a local ` +
    "directory store; one point select by primary key per request, on uniformly random ids. Each figure is " +
    `one closed-loop run of ${b.secondsPerRun} s after a ${
      WARMUP_MS / 1000
    } s warm-up: "in flight" requests ` +
    "outstanding at all times, every latency recorded. All " +
    `${int(b.checked)} answers equal the expected row; a difference fails the run.`,
    "",
    ...table,
    "",
    `- best over HTTP: ${best.join("; ")}`,
    "- in this process: one replica (the wasm engine, intMode bigint, as `tessera serve` opens it) or one " +
    '@libsql/client on the file, `execute` awaited in a loop; "vs in-process" divides by the replica\'s rate; ' +
    "`app.fetch` is the server's Hono app on that replica given each `Request` directly: the handler's cost " +
    "(JSON in and out, the Hrana pipeline) without sockets or an HTTP parser",
    "- over HTTP: `tessera serve --public --port 0` in its own process, and in this one the load generator " +
    "(`fetch` posting the Hrana pipeline @libsql/client sends, or C loops on one @libsql/client over `http:`)",
    `- **${b.cores} cores** for both: the server process and the load generator compete for them, so HTTP ` +
    "figures are lower than a server given the machine to itself would reach; CPU columns are each process's " +
    'CPU time over the run (100% = one core); "other CPU" is what the rest of the machine used meanwhile, ' +
    "another user's work included",
    `- load generator: ${b.versions.generator}; servers: ${b.versions.deno}, ${b.versions.bun}`,
  ];
}
