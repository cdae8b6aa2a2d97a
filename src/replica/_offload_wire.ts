/**
 * The messages between a wasm engine and its offload worker (`offload.ts`, `_offload_worker.ts`), and the
 * layout of the shared control block through which a blocked worker is handed chunks.
 *
 * @module
 */

import type { IntMode, Value } from "@libsql/core/api";
import type { SqlArgs } from "./_values.ts";

/** Slots of the control block (an `Int32Array` over a `SharedArrayBuffer`). */
export const CONTROL = { state: 0, count: 1, first: 2 } as const;
/** Values of the state slot. */
export const STATE = { idle: 0, waiting: 1, ready: 2, failed: 3 } as const;
/** Bytes of the control block. */
export const CONTROL_BYTES = 16;

/** What the worker needs of an image: enough to serve pages, nothing of the manifest. */
export interface ImageShape {
  generation: number;
  size: number;
  chunkSize: number;
  chunk0: Uint8Array;
  keys: readonly string[];
}

/** An error crossing from the worker. */
export interface WireError {
  kind: "libsql" | "range" | "type" | "error";
  message: string;
  code?: string;
  extendedCode?: string | undefined;
  rawCode?: number | undefined;
}

/** A result crossing from the worker: rows as plain arrays of values. */
export interface WireResult {
  columns: string[];
  columnTypes: string[];
  rows: Value[][];
  rowsAffected: number;
  lastInsertRowid: bigint | undefined;
}

/** Engine → worker. */
export type OffloadRequest =
  | { type: "init"; control: SharedArrayBuffer; data: SharedArrayBuffer }
  | {
    type: "run";
    run: number;
    /** The image the statement reads; its shape is sent when the worker's differs. */
    generation: number;
    image?: ImageShape | undefined;
    sql: string;
    /** The arguments as `toSqlArgs` converted them (plain values only). */
    args: SqlArgs;
    intMode: IntMode;
    /** The statement's time limit in ms (0 or absent: none). */
    timeLimitMs?: number | undefined;
    /** When the statement started, in ms since the epoch: its time limit counts from then. */
    startedMs?: number | undefined;
    /** Most rows the statement may return (0 or absent: no bound). */
    maxRows?: number | undefined;
    /** Most bytes of values the statement may return (0 or absent: no bound). */
    maxBytes?: number | undefined;
  };

/** Worker → engine. */
export type OffloadReply =
  | { type: "ready" }
  | { type: "need"; run: number; index: number }
  | { type: "done"; run: number; result: WireResult; fetchFailed: boolean }
  | { type: "failed"; run: number; error: WireError; fetchFailed: boolean };
