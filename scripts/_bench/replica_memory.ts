/**
 * Memory of the wasm engine across a refresh: a read transaction keeps the old snapshot alive while new
 * transactions read the new one, a one-row update later. The two generations share every chunk but the
 * changed one, so the replica holds about one image, not two.
 *
 * @module
 */

import type { EngineMemory } from "../../src/replica/engine.ts";
import { openReplica } from "../../src/replica/open.ts";
import { updateOneRow } from "./database.ts";
import type { BenchDatabase, ReplicaFixture } from "./replica_fixture.ts";
import { int, markdownTable, mib } from "./replica_report.ts";

/** What the wasm engine held at each step. */
export interface MemoryResult {
  db: BenchDatabase;
  /** Chunks the refresh fetched (the rest were shared with the snapshot held). */
  chunksFetched: number;
  states: { state: string; sequence: number; memory: EngineMemory }[];
}

/** Opens a wasm replica of a copy of `base`, updates one row, publishes, and refreshes. */
export async function measureMemory(
  fixture: ReplicaFixture,
  base: BenchDatabase,
  progress: (line: string) => void,
): Promise<MemoryResult> {
  progress("memory across a refresh");
  const db = await fixture.copy(base, `mem-${base.sizeMiB}`);
  const replica = await openReplica(db.name, { store: fixture.store, engine: "wasm", pollIntervalMs: 0 });
  try {
    const states: MemoryResult["states"] = [];
    const note = (state: string) =>
      states.push({ state, sequence: replica.sequence, memory: replica.status().memory });
    note("opened");
    const held = await replica.transaction("read");
    await held.execute("SELECT count(*) FROM random_data");
    let chunksFetched = Number.NaN;
    replica.on("snapshot", (e) => (chunksFetched = e.chunksFetched));
    await updateOneRow(db.path, Math.ceil(db.rows / 2));
    await fixture.sync(db);
    await replica.refresh(1);
    await replica.execute("SELECT count(*) FROM random_data");
    note("1-row update refreshed; a read transaction still holds the old snapshot");
    await held.commit();
    note("that transaction ended");
    if (states[1]!.sequence !== states[0]!.sequence + 1) {
      throw new Error(`The replica of ${db.name} did not move to the next snapshot on refresh`);
    }
    return { db, chunksFetched, states };
  } finally {
    replica.close();
  }
}

/** The section's table. */
export function renderMemory(result: MemoryResult): string[] {
  const { db } = result;
  const rows = result.states.map(({ state, sequence, memory }) => [
    state,
    String(sequence),
    String(memory.snapshots),
    int(memory.chunks),
    int(memory.chunkBytes),
    (memory.chunkBytes / db.bytes).toFixed(3),
  ]);
  rows.push(["(two unshared copies, for comparison)", "", "2", "", int(2 * db.bytes), "2.000"]);
  return [
    `## Memory across a refresh (wasm engine, ${db.name}: ${mib(db.bytes)} image)`,
    "",
    "status().memory after opening, after a one-row update was published and refreshed while a read",
    "transaction kept the old snapshot, and after that transaction ended. chunkBytes counts pooled chunks",
    `(not each image's own copy of chunk 0). The refresh fetched ${result.chunksFetched} chunk(s).`,
    "",
    ...markdownTable(["state", "sequence", "snapshots", "chunks held", "chunkBytes", "÷ image size"], rows),
  ];
}
