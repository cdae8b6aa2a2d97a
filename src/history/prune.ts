/**
 * Retention: which snapshots of a database to keep ({@linkcode chooseRetained}, a pure function), and
 * deleting the manifests of the others from a store ({@linkcode pruneDatabase}). Chunks are left to
 * `tessera gc`.
 *
 * @module
 */

import { listSnapshots, readPointer, type SnapshotEntry } from "../manifest/catalog.ts";
import type { BlobStore } from "../store/types.ts";

/** Which snapshots to keep: one is kept when any rule keeps it. */
export interface RetentionPolicy {
  /** Keep the newest N snapshots (by sequence). */
  keepLast?: number | undefined;
  /** Keep every snapshot taken within this many milliseconds before now. */
  keepWithinMs?: number | undefined;
  /** Keep the newest snapshot of each of the last N clock hours (UTC) that have snapshots. */
  keepHourly?: number | undefined;
  /** Keep the newest snapshot of each of the last N days (UTC) that have snapshots. */
  keepDaily?: number | undefined;
  /**
   * The sequence the database's pointer names: that snapshot and any newer one (a publish in progress
   * writes the manifest before the pointer) are always kept. Without a pointer, every snapshot is kept.
   */
  pointerSequence: number | undefined;
}

/** What {@linkcode chooseRetained} needs to know of a snapshot. */
export interface RetentionEntry {
  sequence: number;
  /** When the snapshot was taken, ms since 1970. */
  createdMs: number;
}

/** Why a snapshot is kept. */
export type KeepReason = "pointer" | "pending" | "no-pointer" | "last" | "within" | "hourly" | "daily";

/** The verdict on one snapshot: kept when `reasons` is not empty. */
export interface RetentionDecision<T extends RetentionEntry> {
  entry: T;
  reasons: KeepReason[];
}

const HOUR_MS = 60 * 60_000;
const DAY_MS = 24 * HOUR_MS;

/**
 * Decides which of `entries` `policy` keeps at time `nowMs`; returns one decision per entry, in sequence
 * order. "Newest" means the highest sequence; hours and days are UTC clock periods of `createdMs`. Throws
 * `RangeError` when the policy has no rule or a count is not a whole number ≥ 1.
 *
 * @example Keep the last two
 * ```ts
 * import { chooseRetained } from "./prune.ts";
 * const entries = [1, 2, 3, 4].map((sequence) => ({ sequence, createdMs: sequence * 1000 }));
 * const decisions = chooseRetained(entries, { keepLast: 2, pointerSequence: 4 }, 10_000);
 * console.log(decisions.filter((d) => d.reasons.length > 0).map((d) => d.entry.sequence)); // [3, 4]
 * ```
 */
export function chooseRetained<T extends RetentionEntry>(
  entries: readonly T[],
  policy: RetentionPolicy,
  nowMs: number,
): RetentionDecision<T>[] {
  checkPolicy(policy);
  const newestFirst = [...entries].sort((a, b) => b.sequence - a.sequence);
  const reasons = new Map<number, KeepReason[]>(entries.map((e) => [e.sequence, []]));
  const keep = (entry: T, reason: KeepReason) => reasons.get(entry.sequence)?.push(reason);
  const { pointerSequence, keepLast, keepWithinMs, keepHourly, keepDaily } = policy;
  for (const entry of newestFirst) {
    if (pointerSequence === undefined) keep(entry, "no-pointer");
    else if (entry.sequence === pointerSequence) keep(entry, "pointer");
    else if (entry.sequence > pointerSequence) keep(entry, "pending");
  }
  if (keepLast !== undefined) newestFirst.slice(0, keepLast).forEach((e) => keep(e, "last"));
  if (keepWithinMs !== undefined) {
    for (const entry of newestFirst) if (entry.createdMs >= nowMs - keepWithinMs) keep(entry, "within");
  }
  const perPeriod = (count: number | undefined, periodMs: number, reason: KeepReason) => {
    if (count === undefined) return;
    const periods = new Set<number>();
    for (const entry of newestFirst) {
      const period = Math.floor(entry.createdMs / periodMs);
      if (periods.has(period)) continue;
      if (periods.size === count) break;
      periods.add(period);
      keep(entry, reason);
    }
  };
  perPeriod(keepHourly, HOUR_MS, "hourly");
  perPeriod(keepDaily, DAY_MS, "daily");
  return [...entries]
    .sort((a, b) => a.sequence - b.sequence)
    .map((entry) => ({ entry, reasons: reasons.get(entry.sequence) ?? [] }));
}

function checkPolicy(policy: RetentionPolicy): void {
  const counts = { keepLast: policy.keepLast, keepHourly: policy.keepHourly, keepDaily: policy.keepDaily };
  for (const [field, value] of Object.entries(counts)) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
      throw new RangeError(`Invalid retention policy: ${field} is ${value}; expected a whole number ≥ 1`);
    }
  }
  const within = policy.keepWithinMs;
  if (within !== undefined && (!Number.isFinite(within) || within < 0)) {
    throw new RangeError(`Invalid retention policy: keepWithinMs is ${within}; expected a duration ≥ 0`);
  }
  if (Object.values(counts).every((v) => v === undefined) && within === undefined) {
    throw new RangeError(
      "Invalid retention policy: give at least one rule (keepLast, keepWithinMs, keepHourly, keepDaily)",
    );
  }
}

/** Options of {@linkcode pruneDatabase}. */
export interface PruneOptions {
  /** Report what would be deleted, and delete nothing. @default {false} */
  dryRun?: boolean | undefined;
  /** The time the rules are measured from. @default {Date.now()} */
  nowMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** One snapshot in a {@linkcode PruneReport}. */
export interface PrunedEntry {
  sequence: number;
  key: string;
  created: string;
  reasons: KeepReason[];
}

/** What {@linkcode pruneDatabase} did in one store. */
export interface PruneReport {
  store: string;
  name: string;
  dryRun: boolean;
  pointerSequence: number | null;
  kept: PrunedEntry[];
  /** Deleted manifests (in a dry run: those that would be deleted), oldest first. */
  deleted: PrunedEntry[];
}

/**
 * Applies `policy` (without `pointerSequence`: the store's pointer supplies it) to database `name` in
 * `store`: deletes the manifests of the snapshots no rule keeps, oldest first. The pointer is read before
 * the history, so a snapshot published meanwhile counts as newer than the pointer and is kept. Chunks are
 * not deleted; `tessera gc` does that. Throws `RangeError` for a policy without rules.
 *
 * @example
 * ```ts
 * import { pruneDatabase } from "./prune.ts";
 * import { MemoryStore } from "../store/memory.ts";
 * const report = await pruneDatabase(new MemoryStore(), "app", { keepLast: 10 }, { dryRun: true });
 * console.log(report.deleted.length); // 0
 * ```
 */
export async function pruneDatabase(
  store: BlobStore,
  name: string,
  policy: Omit<RetentionPolicy, "pointerSequence">,
  options: PruneOptions = {},
): Promise<PruneReport> {
  const { signal } = options;
  const dryRun = options.dryRun ?? false;
  const nowMs = options.nowMs ?? Date.now();
  checkPolicy({ ...policy, pointerSequence: undefined });
  const pointerSequence = (await readPointer(store, name, { signal }))?.sequence;
  const snapshots = await listSnapshots(store, name, { signal });
  const decisions = chooseRetained(snapshots, { ...policy, pointerSequence }, nowMs);
  const row = (d: RetentionDecision<SnapshotEntry>): PrunedEntry => ({
    sequence: d.entry.sequence,
    key: d.entry.key,
    created: new Date(d.entry.createdMs).toISOString(),
    reasons: d.reasons,
  });
  const report: PruneReport = {
    store: store.description,
    name,
    dryRun,
    pointerSequence: pointerSequence ?? null,
    kept: decisions.filter((d) => d.reasons.length > 0).map(row),
    deleted: decisions.filter((d) => d.reasons.length === 0).map(row),
  };
  if (!dryRun) { for (const entry of report.deleted) await store.delete(entry.key, { signal }); }
  return report;
}
