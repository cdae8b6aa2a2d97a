/**
 * What a replica asks of the engine that runs its SQL: prepare snapshots off the query path, serve one to
 * new transactions, and run statements on connections that each keep one snapshot per transaction.
 *
 * @module
 */

import { type InStatement, type IntMode, LibsqlError, type ResultSet } from "@libsql/core/api";
import { utf8Length } from "../bytes.ts";
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

/** Bounds on one statement's result (0: none). */
export interface ResultLimits {
  /** Most rows a statement may return. */
  maxRows: number;
  /** Most bytes of values a statement may return: text as UTF-8, blobs, 8 per number. */
  maxBytes: number;
}

/** The error of a statement whose result passed a {@linkcode ResultLimits} bound. */
export function resultLimitError(limits: ResultLimits, what: "rows" | "bytes"): LibsqlError {
  const message = what === "rows"
    ? `The statement returns more than the limit of ${limits.maxRows} rows: add a LIMIT, or page through ` +
      "the rows with a WHERE on the key"
    : `The statement's result passes the limit of ${limits.maxBytes} bytes: select fewer columns or rows, ` +
      "or page through them";
  return new LibsqlError(message, "RESULT_TOO_LARGE");
}

/** Bytes a value counts for against {@linkcode ResultLimits.maxBytes}. */
export function valueBytes(value: unknown): number {
  if (typeof value === "string") return utf8Length(value);
  if (value instanceof ArrayBuffer) return value.byteLength;
  if (ArrayBuffer.isView(value)) return value.byteLength;
  return 8;
}

/**
 * The error for named arguments given to a statement whose parameter at `position` (1-based) is a nameless
 * `?` (libsql itself would abort the process).
 */
export function namelessParameterError(position: number): TypeError {
  return new TypeError(
    `Cannot bind named arguments: parameter ${position} has no name; pass the arguments as an array`,
  );
}

/**
 * Checks a whole result against `limits` (for an engine that cannot stop while stepping): throws
 * {@linkcode resultLimitError} when it passes one.
 */
export function checkResult(result: ResultSet, limits: ResultLimits): void {
  if (limits.maxRows > 0 && result.rows.length > limits.maxRows) throw resultLimitError(limits, "rows");
  if (limits.maxBytes <= 0) return;
  let bytes = 0;
  for (const row of result.rows) {
    for (let i = 0; i < row.length; i++) bytes += valueBytes(row[i]);
    if (bytes > limits.maxBytes) throw resultLimitError(limits, "bytes");
  }
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
  /**
   * Bounds every statement's result from now on: one that would return more than `maxRows` rows or
   * `maxBytes` bytes of values stops while SQLite steps through it and fails with
   * {@linkcode resultLimitError}, before the rows are held in memory. `0` lifts a bound.
   */
  limitResults(limits: ResultLimits): void;
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
