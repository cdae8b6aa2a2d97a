/**
 * What a replica asks of the engine that runs its SQL: prepare snapshots off the query path, serve one to
 * new transactions, and run statements on connections that each keep one snapshot per transaction.
 *
 * @module
 */

import type { InStatement, IntMode, ResultSet } from "@libsql/core/api";
import type { Manifest } from "../manifest/types.ts";
import type { StatementDescription } from "./describe.ts";

/** One snapshot an engine can serve. Counted: it is let go when nothing holds it any more. */
export interface EngineSnapshot {
  readonly manifest: Manifest;
  /** When this process finished preparing it, in milliseconds since the epoch. */
  readonly preparedMs: number;
  /** Chunks it had to fetch; the rest were shared with snapshots already held. */
  readonly chunksFetched: number;
  /** One more holder. */
  retain(): void;
  /** One holder fewer; the last lets the snapshot's memory or file go. */
  release(): void;
}

/** One SQLite connection of an engine. Statements on it run one at a time, in call order. */
export interface EngineConnection {
  execute(stmt: InStatement, intMode: IntMode): Promise<ResultSet>;
  executeMultiple(sql: string): Promise<void>;
  /** Compiles the first statement of `sql` without running it and describes it (Hrana's `describe`). */
  describe(sql: string): Promise<StatementDescription>;
  /** Starts a read transaction, on the snapshot served now, which it keeps until it ends. */
  begin(): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  /** True while a transaction is open on the connection. */
  readonly inTransaction: boolean;
  /** Gives the connection back to the engine (rolling back an open transaction), or closes it. */
  release(): void;
}

/** Memory an engine holds, for status and benchmarks. */
export interface EngineMemory {
  /** Bytes of snapshot data held in memory (wasm) or 0 (native: the data is in files). */
  chunkBytes: number;
  /** Distinct chunks held in memory. */
  chunks: number;
  /** Snapshots held (served, prepared, or still read by a transaction). */
  snapshots: number;
  /** wasm: the memory cap (bytes of chunks kept beyond those pinned). */
  capacityBytes?: number;
  /** wasm: bytes of chunks pinned now (eager snapshots, statements waiting for chunks). */
  pinnedBytes?: number;
  /** wasm: the most bytes of chunks held at once. */
  peakChunkBytes?: number;
  /** wasm: true when the served snapshot is loaded lazily. */
  lazy?: boolean;
  /** wasm: chunks fetched for queries, refreshes and hydration of lazy snapshots. */
  chunksLoaded?: number;
  /** wasm: fetches made for them. */
  loads?: number;
  /** wasm: statements run in the worker because they needed more than the memory cap. */
  offloaded?: number;
  /** wasm: chunk reads SQLite's file served from memory. */
  chunkHits?: number;
  /** wasm: chunk reads that found the chunk missing, so it was fetched (lazy snapshots). */
  chunkMisses?: number;
}

/** A replica's SQL engine. */
export interface ReplicaEngine {
  readonly kind: "wasm" | "native";
  /** Builds a snapshot from a manifest, fetching only what the snapshots held lack. Holds it once. */
  prepare(manifest: Manifest, signal: AbortSignal): Promise<EngineSnapshot>;
  /** Makes `snapshot` the one transactions starting from now see. */
  serve(snapshot: EngineSnapshot): void;
  /** Borrows a connection; a transaction keeps it until it settles. */
  connect(): Promise<EngineConnection>;
  memory(): EngineMemory;
  /** Closes every connection and lets go of every snapshot. */
  close(): void;
}

/**
 * Moves an engine's served snapshot from `current` to `next`: `next` gains a holder, `current` loses one.
 *
 * @returns `next`, to store as the served snapshot.
 */
export function replaceServed<S extends EngineSnapshot>(current: S | undefined, next: S): S {
  if (next === current) return next;
  next.retain();
  current?.release();
  return next;
}
