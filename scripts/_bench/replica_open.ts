/**
 * Open time: `openReplica` with an empty cache directory (every chunk from s3rver) and again with that
 * directory filled, for both engines, set beside `restoreImage` of the same snapshot through the same kind
 * of chunk source, and beside `aws s3 cp` of the whole file.
 *
 * @module
 */

import { rm } from "node:fs/promises";
import { join } from "node:path";
import { loadLatest } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { openReplica } from "../../src/config/replica.ts";
import { awsCopy } from "./alternatives.ts";
import type { BenchDatabase, ReplicaFixture } from "./replica_fixture.ts";
import { markdownTable, median, mib, ms, rate, versus } from "./replica_report.ts";

/** How much the section runs. */
export interface OpenSettings {
  sizesMiB: number[];
  /** Repetitions of every open for databases up to 16 MiB. */
  reps: number;
  /** Repetitions for larger databases. */
  largeReps: number;
}

/** One way of getting a snapshot ready, timed. */
export interface OpenTiming {
  db: BenchDatabase;
  cache: "cold" | "warm" | "none";
  method: string;
  ms: number[];
}

/** The ways timed: openReplica per engine (and the wasm engine with more fetches in flight), restoreImage. */
interface Method {
  label: string;
  engine?: "wasm" | "native";
  /** Chunk fetches in flight. @default {8, openReplica's and restoreImage's default} */
  concurrency?: number;
}

const METHODS: Method[] = [
  { label: "replica wasm", engine: "wasm" },
  { label: "replica native", engine: "native" },
  { label: "restoreImage" },
  { label: "replica wasm, concurrency 32", engine: "wasm", concurrency: 32 },
];

/** Times every method on a database of each size. */
export async function measureOpen(
  fixture: ReplicaFixture,
  settings: OpenSettings,
  progress: (line: string) => void,
): Promise<OpenTiming[]> {
  const out: OpenTiming[] = [];
  for (const size of settings.sizesMiB) {
    const db = await fixture.database(size);
    const reps = size <= 16 ? settings.reps : settings.largeReps;
    const timings = new Map<string, OpenTiming>();
    const record = (method: string, cache: OpenTiming["cache"], time: number) => {
      const key = `${method} ${cache}`;
      if (!timings.has(key)) timings.set(key, { db, cache, method, ms: [] });
      timings.get(key)!.ms.push(time);
    };
    const whole = `s3://${fixture.server.bucket}/whole/${db.name}.db`;
    progress(`aws s3 cp of ${db.name} up (not timed)`);
    await awsCopy(fixture.server, db.path, whole);
    for (let rep = 0; rep < reps; rep++) {
      for (let i = 0; i < METHODS.length; i++) {
        const method = METHODS[(i + rep) % METHODS.length]!;
        progress(`open ${db.name}: ${method.label}, ${rep + 1} of ${reps}`);
        const cacheDirectory = await fixture.newDirectory("cache");
        for (const cache of ["cold", "warm"] as const) {
          record(method.label, cache, await openOnce(fixture, db, method, cacheDirectory));
        }
        await rm(cacheDirectory, { recursive: true, force: true });
      }
      progress(`open ${db.name}: aws s3 cp down, ${rep + 1} of ${reps}`);
      const copy = join(fixture.work, `aws-${db.name}.db`);
      record("aws s3 cp (whole file)", "none", (await awsCopy(fixture.server, whole, copy)) * 1000);
      await rm(copy, { force: true });
    }
    out.push(...timings.values());
  }
  return out;
}

/** Gets `db`'s newest snapshot ready with `method`, checks it, and returns the milliseconds it took. */
async function openOnce(
  fixture: ReplicaFixture,
  db: BenchDatabase,
  method: Method,
  cacheDirectory: string,
): Promise<number> {
  const { engine, concurrency } = method;
  if (engine === undefined) {
    const out = join(fixture.work, `restored-${db.name}.db`);
    const started = performance.now();
    const { manifest } = await loadLatest(fixture.store, db.name);
    await restoreImage({ manifest, chunks: fixture.chunkSource(cacheDirectory), out, concurrency });
    const elapsed = performance.now() - started;
    await rm(out, { force: true });
    return elapsed;
  }
  const directory = engine === "native" ? await fixture.newDirectory("native") : undefined;
  const started = performance.now();
  const replica = await openReplica(db.name, {
    store: fixture.store,
    engine,
    cacheDirectory,
    directory,
    pollIntervalMs: 0,
    concurrency,
  });
  const elapsed = performance.now() - started;
  try {
    const last = (await replica.execute("SELECT max(id) FROM random_data")).rows[0]?.[0];
    if (last !== db.rows) {
      throw new Error(`${method.label} opened ${db.name} but reads max(id) ${last}, not ${db.rows}`);
    }
  } finally {
    replica.close();
  }
  if (directory !== undefined) await rm(directory, { recursive: true, force: true });
  return elapsed;
}

/** The section's table. */
export function renderOpen(timings: OpenTiming[]): string[] {
  const rows = timings.map((t) => {
    const time = median(t.ms);
    const same = (method: string, cache?: string) =>
      timings.find((o) => o.db === t.db && o.method === method && (cache === undefined || o.cache === cache));
    const restore = same("restoreImage", t.cache === "none" ? "cold" : t.cache);
    const aws = same("aws s3 cp (whole file)");
    return [
      `${t.db.name} (${mib(t.db.bytes)})`,
      t.cache,
      t.method,
      ms(time),
      rate(t.db.bytes / 1e6 / (time / 1000)),
      restore && restore !== t ? versus(time, median(restore.ms), true) : "",
      aws && aws !== t ? versus(time, median(aws.ms), true) : "",
      t.ms.length > 1 ? `median of ${t.ms.length}` : "",
    ];
  });
  return [
    "## Open time (newest snapshot from s3rver, ready to query)",
    "",
    "cold: empty cache directory, every chunk from s3rver (and written to the cache); warm: the same directory",
    "filled. restoreImage writes the image to a file through the same chunk source (chunkSourceFor). aws s3 cp",
    "downloads the whole file; its row is compared with restoreImage cold. MB/s = image bytes / time.",
    "Every method fetches 8 chunks at once (both functions' default) but the last, which fetches 32.",
    "",
    ...markdownTable(
      ["database", "cache", "method", "ms", "MB/s", "vs restoreImage", "vs aws s3 cp", "note"],
      rows,
      3,
    ),
  ];
}
