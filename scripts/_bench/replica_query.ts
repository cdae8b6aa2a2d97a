/**
 * Query throughput: point selects and 100-row range scans on both replica engines, set beside
 * @libsql/client on the original file and raw sqlite-wasm on the same bytes; and what `autoRefresh` and a
 * 100 ms poller cost each transaction.
 *
 * Targets run in rounds, each round in a rotated order, so drift on a busy machine spreads over all of
 * them; each figure is the median round.
 *
 * @module
 */

import type { BenchDatabase, ReplicaFixture } from "./replica_fixture.ts";
import { median, randomKeys } from "./replica_report.ts";
import {
  libsqlTarget,
  type QueryTarget,
  RANGE_ROWS,
  rawWasmTarget,
  replicaTarget,
} from "./replica_targets.ts";

/** How much each section runs. */
export interface QuerySettings {
  /** Point selects per round and target. */
  points: number;
  /** Range scans per round and target. */
  ranges: number;
  rounds: number;
  /** A measurement repeats its queries until it has run this long, so fast targets are timed as long. */
  minMs: number;
}

/** One target's rounds, in operations per second. */
export interface Throughput {
  label: string;
  points: number[];
  ranges: number[];
}

/** One replica configuration of the autoRefresh section. */
export interface RefreshCost {
  engine: "wasm" | "native";
  config: string;
  points: number[];
  /** Store checks the poller made while the rounds ran, and the seconds they ran. */
  checks: number;
  seconds: number;
}

const HOUR = 3_600_000;
const ENGINES = ["wasm", "native"] as const;

/** Point and range throughput of the four targets on `db`. */
export async function measureQueries(
  fixture: ReplicaFixture,
  db: BenchDatabase,
  settings: QuerySettings,
  progress: (line: string) => void,
): Promise<Throughput[]> {
  const targets: QueryTarget[] = [];
  try {
    progress(`query targets on ${db.name}`);
    for (const engine of ENGINES) {
      const { target } = await replicaTarget(`replica ${engine}`, db.name, {
        store: fixture.store,
        engine,
        cacheDirectory: await fixture.newDirectory("cache"),
        directory: await fixture.newDirectory("native"),
        pollIntervalMs: HOUR,
      });
      targets.push(target);
    }
    targets.push(
      libsqlTarget(db.path),
      await rawWasmTarget(db.path, "c"),
      await rawWasmTarget(db.path, "oo1"),
    );
    const keys = randomKeys(settings.points, db.rows, 1);
    const starts = randomKeys(settings.ranges, db.rows - RANGE_ROWS + 1, 2);
    const check = checker();
    for (const t of targets) {
      check(`${t.label} (warm-up points)`, await t.points(keys.subarray(0, Math.ceil(keys.length / 10))));
      check(
        `${t.label} (warm-up ranges)`,
        await t.ranges(starts.subarray(0, Math.ceil(starts.length / 10))),
        1,
      );
    }
    check.reset();
    const results = targets.map((t): Throughput => ({ label: t.label, points: [], ranges: [] }));
    for (let round = 0; round < settings.rounds; round++) {
      progress(`point and range queries, round ${round + 1} of ${settings.rounds}`);
      for (const i of rotated(targets.length, round)) {
        const t = targets[i]!;
        results[i]!.points.push(
          await opsPerSecond(keys.length, settings.minMs, async () => check(t.label, await t.points(keys))),
        );
        results[i]!.ranges.push(
          await opsPerSecond(
            starts.length,
            settings.minMs,
            async () => check(`${t.label} ranges`, await t.ranges(starts), 1),
          ),
        );
      }
    }
    return results;
  } finally {
    for (const t of targets) t.close();
  }
}

/** What the autoRefresh section measured. */
export interface AutoRefreshResult {
  rows: RefreshCost[];
  /** By engine: the median wall time of one check that finds nothing new (a 304), in ms. */
  checkMs: Record<string, number>;
}

const CHECKS_TIMED = 30;
/** Queries between two turns of the event loop in the autoRefresh section (see its table's note). */
const YIELD_EVERY = 100;

/**
 * The same point selects through `execute` with autoRefresh off, on, and on with a 100 ms poller. Each
 * replica lives for one round only, so a poller never runs while another configuration is measured; a
 * first round, not recorded, warms every code path up.
 */
export async function measureAutoRefresh(
  fixture: ReplicaFixture,
  db: BenchDatabase,
  settings: QuerySettings,
  progress: (line: string) => void,
): Promise<AutoRefreshResult> {
  const configs = [
    { config: "autoRefresh off", autoRefresh: false, pollIntervalMs: HOUR },
    { config: "autoRefresh on", autoRefresh: true, pollIntervalMs: HOUR },
    { config: "autoRefresh on, poll every 100 ms", autoRefresh: true, pollIntervalMs: 100 },
  ];
  const keys = randomKeys(settings.points, db.rows, 3);
  const warm = keys.subarray(0, Math.ceil(keys.length / 10));
  const result: AutoRefreshResult = { rows: [], checkMs: {} };
  const check = checker();
  for (const engine of ENGINES) {
    // Every replica of an engine opens from one cache directory, filled here, so opening stays cheap.
    const cacheDirectory = await fixture.newDirectory("cache");
    const base = { store: fixture.store, engine, cacheDirectory };
    const { target: first, replica } = await replicaTarget("fill", db.name, { ...base, pollIntervalMs: 0 });
    const checks: number[] = [];
    for (let i = 0; i < CHECKS_TIMED; i++) {
      const started = performance.now();
      await replica.refresh(2);
      checks.push(performance.now() - started);
    }
    result.checkMs[engine] = median(checks);
    first.close();
    const rows = configs.map((c): RefreshCost => ({
      engine,
      config: c.config,
      points: [],
      checks: 0,
      seconds: 0,
    }));
    for (let round = -1; round < settings.rounds; round++) {
      progress(`autoRefresh, ${engine} engine, round ${round + 1} of ${settings.rounds}`);
      for (const i of rotated(configs.length, round + 1)) {
        const { config: _, ...freshness } = configs[i]!;
        const directory = engine === "native" ? await fixture.newDirectory("native") : undefined;
        const { target, replica } = await replicaTarget(engine, db.name, {
          ...base,
          ...freshness,
          directory,
        });
        try {
          check(`${engine} warm-up`, await target.points(warm), 0);
          const before = replica.status().checks;
          const started = performance.now();
          const ops = await opsPerSecond(
            keys.length,
            settings.minMs,
            async () => check(engine, await target.points(keys, YIELD_EVERY), 1),
          );
          if (round < 0) continue;
          rows[i]!.points.push(ops);
          rows[i]!.seconds += (performance.now() - started) / 1000;
          rows[i]!.checks += replica.status().checks - before;
        } finally {
          target.close();
        }
      }
    }
    result.rows.push(...rows);
  }
  return result;
}

/** Runs `run` (`count` operations) once, and again until `minMs` have passed; returns operations/s. */
async function opsPerSecond(count: number, minMs: number, run: () => Promise<void>): Promise<number> {
  const started = performance.now();
  let done = 0;
  do {
    await run();
    done += count;
  } while (performance.now() - started < minMs);
  return done / ((performance.now() - started) / 1000);
}

/** Target indexes for `round`: the order shifts by one each round. */
function rotated(n: number, round: number): number[] {
  return Array.from({ length: n }, (_, i) => (i + round) % n);
}

/**
 * Compares checksums of one workload (by `slot`) across targets and rounds: the first one seen is the
 * expected one.
 */
function checker() {
  let expected = new Map<number, number>();
  const check = (what: string, sum: number, slot = 0): void => {
    const want = expected.get(slot);
    if (want === undefined) expected.set(slot, sum);
    else if (want !== sum) throw new Error(`${what} read different rows: checksum ${sum}, expected ${want}`);
  };
  return Object.assign(check, { reset: () => void (expected = new Map()) });
}
