/**
 * Refresh lag: a writer process commits a row and publishes it; replicas (one per engine, autoRefresh on,
 * polling every 100 ms) are probed every 5 ms with a one-row query until the row shows. Each commit waits
 * a random fraction of the poll interval first, so commits do not fall in step with the poller.
 *
 * @module
 */

import { spawn } from "node:child_process";
import process from "node:process";
import { createInterface } from "node:readline";
import { openReplica } from "../../src/replica/open.ts";
import type { Replica } from "../../src/replica/replica.ts";
import { isDeno, ROOT } from "../../test/_helpers/run.ts";
import { type BenchDatabase, HOSTNAME, type ReplicaFixture } from "./replica_fixture.ts";
import { markdownTable, ms, percentile, seededRandom, wallMs } from "./replica_report.ts";
import type { WriterConfig, WriterLine } from "./replica_writer.ts";

/** How much the section runs. */
export interface LagSettings {
  commits: number;
  pollIntervalMs: number;
  probeMs: number;
}

/** One commit, as the writer and each replica saw it (wall-clock ms). */
export interface LagSample extends WriterLine {
  /**
   * By engine: when the check that found the snapshot holding the row started (Date.now(), whole ms), when
   * the replica emitted that snapshot, and when a query first saw the row.
   */
  replicas: Record<string, { checkStarted: number; prepared: number; visible: number }>;
}

const ENGINES = ["wasm", "native"] as const;
const GIVE_UP_MS = 30_000;

/** Runs the commits on a copy of `base` and returns one sample per commit. */
export async function measureLag(
  fixture: ReplicaFixture,
  base: BenchDatabase,
  settings: LagSettings,
  progress: (line: string) => void,
): Promise<LagSample[]> {
  const db = await fixture.copy(base, `lag-${base.sizeMiB}`);
  const writer = startWriter({
    path: db.path,
    name: db.name,
    hostname: HOSTNAME,
    spoolDir: fixture.spoolDir,
    address: fixture.address,
  });
  const replicas = new Map<string, Replica>();
  try {
    await writer.next();
    const prepared = new Map<string, Map<number, { at: number; checkStarted: number }>>();
    for (const engine of ENGINES) {
      const replica = await openReplica(db.name, {
        store: fixture.store,
        engine,
        directory: engine === "native" ? await fixture.newDirectory("native") : undefined,
        autoRefresh: true,
        pollIntervalMs: settings.pollIntervalMs,
      });
      replicas.set(engine, replica);
      const times = new Map<number, { at: number; checkStarted: number }>();
      prepared.set(engine, times);
      // The check emitting the event is the last one started.
      replica.on(
        "snapshot",
        (e) =>
          times.set(e.sequence, { at: wallMs(), checkStarted: replica.status().lastCheckMs ?? Number.NaN }),
      );
    }
    const jitter = seededRandom(4);
    const samples: LagSample[] = [];
    for (let k = 1; k <= settings.commits; k++) {
      if (k % 10 === 1) progress(`refresh lag, commit ${k} of ${settings.commits}`);
      await sleep(jitter() * settings.pollIntervalMs);
      writer.send(k);
      const seen = await Promise.all(ENGINES.map((e) => visibleAt(replicas.get(e)!, k, settings.probeMs)));
      const line = await writer.next() as WriterLine;
      if (line.k !== k) throw new Error(`The writer answered for row ${line.k}, not ${k}`);
      const sample: LagSample = { ...line, replicas: {} };
      ENGINES.forEach((engine, i) => {
        const at = prepared.get(engine)!.get(line.sequence);
        sample.replicas[engine] = {
          checkStarted: at?.checkStarted ?? Number.NaN,
          prepared: at?.at ?? Number.NaN,
          visible: seen[i]!,
        };
      });
      samples.push(sample);
    }
    return samples;
  } finally {
    for (const replica of replicas.values()) replica.close();
    await writer.stop();
  }
}

/** Probes until row `k` shows, and returns when it did. */
async function visibleAt(replica: Replica, k: number, probeMs: number): Promise<number> {
  const started = wallMs();
  for (;;) {
    const found = await replica.execute({ sql: "SELECT 1 FROM bench_lag WHERE k = ?", args: [k] });
    const now = wallMs();
    if (found.rows.length > 0) return now;
    if (now - started > GIVE_UP_MS) {
      throw new Error(
        `Row ${k} did not show on the ${replica.status().engine} replica within ${GIVE_UP_MS} ms`,
      );
    }
    await sleep(probeMs);
  }
}

/** The section's table. */
export function renderLag(samples: LagSample[], settings: LagSettings): string[] {
  const row = (what: string, values: number[], total?: number[]) => {
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const totalMean = total ? total.reduce((a, b) => a + b, 0) / total.length : undefined;
    return [
      what,
      ms(percentile(values, 50)),
      ms(percentile(values, 99)),
      ms(mean),
      totalMean ? `${(mean / totalMean * 100).toFixed(0)}%` : "",
    ];
  };
  const rows: string[][] = [];
  const sync = samples.map((s) => s.published - s.committed);
  for (const engine of ENGINES) {
    const total = samples.map((s) => s.replicas[engine]!.visible - s.committed);
    rows.push(
      row(`replica ${engine}: commit → visible`, total),
      row("  commit → published (syncDatabase, writer process)", sync, total),
      row("  published → visible", samples.map((s) => s.replicas[engine]!.visible - s.published), total),
      row(
        "    published → check started (poll wait)",
        samples.map((s) => s.replicas[engine]!.checkStarted - s.published),
        total,
      ),
      row(
        "    check started → prepared (pointer, manifest, chunks)",
        samples.map((s) => s.replicas[engine]!.prepared - s.replicas[engine]!.checkStarted),
        total,
      ),
      row(
        `    prepared → visible (next probe, every ${settings.probeMs} ms)`,
        samples.map((s) => s.replicas[engine]!.visible - s.replicas[engine]!.prepared),
        total,
      ),
    );
  }
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  return [
    `## Refresh lag (${samples.length} commits; autoRefresh on, pollIntervalMs ${settings.pollIntervalMs})`,
    "",
    "A writer process commits one row to the source (rollback journal) and runs syncDatabase to s3rver; each",
    `replica is probed every ${settings.probeMs} ms until the row shows. Both replicas poll at once, in one`,
    `process. Times in ms, wall clock across processes; p99 of ${samples.length} samples is near the maximum.`,
    `Each sync read ${mean(samples.map((s) => s.chunksRead)).toFixed(1)} and uploaded ` +
    `${mean(samples.map((s) => s.chunksUploaded)).toFixed(1)} chunks on average; a check's start is`,
    "known to the whole millisecond only.",
    "",
    ...markdownTable(["phase", "p50 ms", "p99 ms", "mean ms", "share of mean"], rows),
  ];
}

interface Writer {
  send(k: number): void;
  /** The writer's next line, parsed. */
  next(): Promise<unknown>;
  stop(): Promise<void>;
}

function startWriter(config: WriterConfig): Writer {
  const script = "scripts/_bench/replica_writer.ts";
  const args = [script, JSON.stringify(config)];
  const child = spawn(process.execPath, isDeno ? ["run", "-A", ...args] : args, {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    send: (k) => void child.stdin.write(`${k}\n`),
    async next() {
      const next = await Promise.race([lines.next(), exited.then(() => undefined)]);
      if (!next || next.done) {
        throw new Error(`The lag writer exited with code ${await exited}; its stderr:\n${stderr}`);
      }
      return JSON.parse(next.value);
    },
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill(), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}
