/**
 * Restore throughput against `tessera restore --concurrency N` on the latency store: with a fixed round
 * trip per request, how many chunk requests are in flight decides how fast a restore can go.
 *
 * @module
 */

import { unlink } from "node:fs/promises";
import { join } from "node:path";
import { checkSha256 } from "./alternatives.ts";
import { type MadeDatabase, restoreStore, type Setups } from "./e2e_sizes.ts";
import { median } from "./replica_report.ts";
import type { Sweep, SweepPoint } from "./results.ts";
import { tesseraRestore } from "./tessera_cli.ts";

/** What {@linkcode measureSweep} needs: a database already synced to every setup, and the settings. */
export interface SweepOptions {
  setups: Setups;
  database: MadeDatabase;
  concurrencies: number[];
  reps: number;
  work: string;
  /** awscli's download time of the same database from the same store, for the reference line. */
  awscliSeconds: number;
  progress: (line: string) => void;
}

/** Restores `database` from the latency store once (or `reps` times) per concurrency, each verified. */
export async function measureSweep(options: SweepOptions): Promise<Sweep> {
  const { setups, database, concurrencies, reps, work, awscliSeconds, progress } = options;
  const out = join(work, `sweep-${database.sizeMiB}.db`);
  const points: SweepPoint[] = [];
  for (const concurrency of concurrencies) {
    progress(`concurrency ${concurrency}: restoring ${database.sizeMiB} MiB from the latency store`);
    const samples: number[] = [];
    const requests: number[] = [];
    for (let rep = 0; rep < reps; rep++) {
      await setups.latency.takeRequests();
      const { seconds } = await tesseraRestore({
        store: restoreStore(setups, "latency"),
        name: database.name,
        out,
        concurrency,
      });
      requests.push(await setups.latency.takeRequests());
      await checkSha256(out, database.sha256, `The database restored at --concurrency ${concurrency}`);
      await unlink(out);
      samples.push(seconds);
    }
    points.push({ concurrency, seconds: median(samples), samples, requests: Math.round(median(requests)) });
  }
  return {
    setup: "latency",
    sizeMiB: database.sizeMiB,
    bytes: database.bytes,
    points,
    awscliSeconds,
  };
}
