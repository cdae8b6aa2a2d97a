/**
 * The read-replica benchmark: query throughput of both replica engines beside @libsql/client on the
 * original file and raw sqlite-wasm on the same bytes; what autoRefresh and a 100 ms poller cost; open time
 * from s3rver and from a warm cache beside restoreImage and `aws s3 cp`; refresh lag from a writer's commit
 * to a replica seeing it; and the wasm engine's memory across a refresh. Every figure is set beside its
 * alternative measured in the same run; there are no thresholds. Prints markdown.
 *
 * Usage: deno task bench:replica [--quick] [--only point,autorefresh,open,lag,memory]
 *        (or: bun scripts/_bench/replica.ts ...)
 *
 * @module
 */

import { createClient } from "@libsql/client";
import { availableParallelism, cpus, release, totalmem } from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import { loadSqlite3 } from "../../src/replica/wasm.ts";
import { makeTempDir } from "../../test/_helpers/temp.ts";
import { awsVersion } from "./alternatives.ts";
import { ReplicaFixture } from "./replica_fixture.ts";
import { measureLag, renderLag } from "./replica_lag.ts";
import { measureMemory, renderMemory } from "./replica_memory.ts";
import { measureOpen, renderOpen } from "./replica_open.ts";
import { measureAutoRefresh, measureQueries } from "./replica_query.ts";
import { renderAutoRefresh, renderQueries } from "./replica_query_report.ts";
import { ms } from "./replica_report.ts";
import { print, removeWorkDir, runtimeName } from "./run.ts";

const SECTIONS = ["point", "autorefresh", "open", "lag", "memory"] as const;
type Section = typeof SECTIONS[number];
const USAGE = `usage: replica.ts [--quick] [--only ${SECTIONS.join("|")}[,...]]`;

const FULL = {
  queryMiB: 16,
  query: { points: 20_000, ranges: 2_000, rounds: 5, minMs: 500 },
  open: { sizesMiB: [16, 256], reps: 3, largeReps: 2 },
  lag: { commits: 50, pollIntervalMs: 100, probeMs: 5 },
};
const QUICK: typeof FULL = {
  queryMiB: 2,
  query: { points: 1_000, ranges: 100, rounds: 1, minMs: 0 },
  open: { sizesMiB: [1, 4], reps: 1, largeReps: 1 },
  lag: { commits: 5, pollIntervalMs: 100, probeMs: 5 },
};

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const only = values.only?.split(",").map((s) => s.trim()).filter((s) => s !== "");
const unknown = only?.filter((s) => !(SECTIONS as readonly string[]).includes(s)) ?? [];
if (unknown.length > 0) {
  console.error(`bench:replica: unknown section "${unknown.join(", ")}"\n${USAGE}`);
  process.exit(2);
}
const sections = new Set<Section>((only as Section[] | undefined) ?? SECTIONS);
const settings = values.quick ? QUICK : FULL;
const progress = process.stderr.isTTY
  ? (line: string) => process.stderr.write(`bench:replica: ${line}\n`)
  : () => {};

async function main(): Promise<void> {
  const started = performance.now();
  const work = await makeTempDir("bench-replica");
  let fixture: ReplicaFixture | undefined;
  try {
    fixture = await ReplicaFixture.start(work, progress);
    print(await header(fixture));
    const queryDb = () => fixture!.database(settings.queryMiB);
    if (sections.has("point")) {
      const db = await queryDb();
      print(renderQueries(await measureQueries(fixture, db, settings.query, progress), db));
    }
    if (sections.has("autorefresh")) {
      print(renderAutoRefresh(await measureAutoRefresh(fixture, await queryDb(), settings.query, progress)));
    }
    if (sections.has("open")) print(renderOpen(await measureOpen(fixture, settings.open, progress)));
    if (sections.has("lag")) {
      print(renderLag(await measureLag(fixture, await queryDb(), settings.lag, progress), settings.lag));
    }
    if (sections.has("memory")) print(renderMemory(await measureMemory(fixture, await queryDb(), progress)));
    print([`total wall time ${((performance.now() - started) / 1000).toFixed(1)} s`]);
  } finally {
    await fixture?.stop();
    await removeWorkDir(work, "bench:replica");
  }
}

/** The machine, the runtime and the SQLite builds, printed first. */
async function header(fixture: ReplicaFixture): Promise<string[]> {
  const loading = performance.now();
  const sqlite3 = await loadSqlite3();
  const loadMs = performance.now() - loading;
  const libsql = createClient({ url: ":memory:" });
  const libsqlVersion = String((await libsql.execute("SELECT sqlite_version()")).rows[0]?.[0]);
  libsql.close();
  const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
  return [
    `# Tessera replica benchmark${values.quick ? " (--quick: small sizes, few iterations)" : ""}`,
    "",
    `- machine: ${availableParallelism()} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ` +
    `${process.platform} ${release()} ${process.arch}`,
    `- runtime: ${runtimeName()}`,
    `- SQLite: sqlite-wasm ${sqlite3.version.libVersion} (replica wasm engine, raw baseline; module load ` +
    `${ms(loadMs)} ms, once per process, not in any figure); libsql ${libsqlVersion} (@libsql/client, ` +
    "replica native engine)",
    `- store: s3rver on 127.0.0.1 (same host and CPUs) through S3Store; ${await awsVersion(fixture.server)}`,
    `- sections: ${[...sections].join(", ")}`,
  ];
}

await main();
