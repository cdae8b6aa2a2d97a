/**
 * The things the query sections run the same statements on: a replica (either engine), @libsql/client on
 * the original file, and raw sqlite-wasm on the same bytes deserialized into memory. Every target returns a
 * checksum of what it read, so the run fails if two targets disagree about the data.
 *
 * @module
 */

import sqlite3InitModule from "@sqlite.org/sqlite-wasm";
import { createClient } from "@libsql/client";
import type { Row } from "@libsql/core/api";
import { readFile } from "node:fs/promises";
import { setImmediate } from "node:timers";
import { openReplica, type OpenReplicaOptions } from "../../src/config/replica.ts";
import type { Replica } from "../../src/replica/replica.ts";

/** One primary-key lookup. */
export const POINT_SQL = "SELECT id, payload FROM random_data WHERE id = ?";
/** Rows `from` .. `from + RANGE_ROWS - 1`, by primary key. */
export const RANGE_SQL = "SELECT id, payload FROM random_data WHERE id BETWEEN ? AND ?";
export const RANGE_ROWS = 100;

/** Something the query sections measure. */
export interface QueryTarget {
  readonly label: string;
  /**
   * One point select per key, in order, each awaited; returns a checksum of the rows read. With
   * `yieldEvery`, it lets timers and I/O run (setImmediate) after that many queries, as a server between
   * requests does.
   */
  points(keys: Int32Array, yieldEvery?: number): Promise<number>;
  /** One range of {@linkcode RANGE_ROWS} rows per start; returns a checksum of the rows read. */
  ranges(starts: Int32Array): Promise<number>;
  close(): void;
}

/** Anything with @libsql/client's `execute` (a `Client` or a `Replica`). */
interface Executes {
  execute(stmt: { sql: string; args: number[] }): Promise<{ rows: Row[] }>;
}

/** A target that runs each statement through `execute`, as an application would. */
export function executeTarget(label: string, client: Executes & { close(): void }): QueryTarget {
  return {
    label,
    async points(keys, yieldEvery = 0) {
      let sum = 0;
      for (let i = 0; i < keys.length; i++) {
        sum += checksum((await client.execute({ sql: POINT_SQL, args: [keys[i]!] })).rows);
        if (yieldEvery > 0 && i % yieldEvery === yieldEvery - 1) await new Promise((r) => setImmediate(r));
      }
      return sum;
    },
    async ranges(starts) {
      let sum = 0;
      for (const k of starts) {
        sum += checksum((await client.execute({ sql: RANGE_SQL, args: [k, k + RANGE_ROWS - 1] })).rows);
      }
      return sum;
    },
    close: () => client.close(),
  };
}

/** @libsql/client on the original file (plain `file:`: the client rejects `?mode=ro`). */
export function libsqlTarget(path: string): QueryTarget {
  return executeTarget("@libsql/client", createClient({ url: `file:${path}` }));
}

/** A replica opened on `name`, and the replica itself for its status. */
export async function replicaTarget(
  label: string,
  name: string,
  options: OpenReplicaOptions,
): Promise<{ target: QueryTarget; replica: Replica }> {
  const replica = await openReplica(name, options);
  return { target: executeTarget(label, replica), replica };
}

/** The sqlite-wasm exports the C-API baseline calls directly, as the wasm engine does. */
interface RawExports {
  sqlite3_bind_int(stmt: number, i: number, value: number): number;
  sqlite3_step(stmt: number): number;
  sqlite3_reset(stmt: number): number;
  sqlite3_column_int(stmt: number, i: number): number;
  sqlite3_column_blob(stmt: number, i: number): number;
  sqlite3_column_bytes(stmt: number, i: number): number;
}

const SQLITE_ROW = 100;

/**
 * sqlite-wasm (a module instance of its own) on the file's bytes, deserialized read-only into an
 * in-memory database, through two statements prepared once for the whole run. `oo1`: bound, stepped and
 * read through the oo1 `Stmt` methods; `c`: through the C functions the module exports, with no wrapper,
 * the way the wasm engine calls them: the floor for it.
 */
export async function rawWasmTarget(path: string, api: "oo1" | "c"): Promise<QueryTarget> {
  const sqlite3 = await sqlite3InitModule();
  const { capi, wasm } = sqlite3;
  const file = await readFile(path);
  // A plain Uint8Array: sqlite-wasm's allocator does not recognise node's Buffer subclass.
  const bytes = new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
  const db = new sqlite3.oo1.DB(":memory:");
  const data = wasm.allocFromTypedArray(bytes);
  db.checkRc(capi.sqlite3_deserialize(
    db.pointer!,
    "main",
    data,
    bytes.length,
    bytes.length,
    capi.SQLITE_DESERIALIZE_FREEONCLOSE | capi.SQLITE_DESERIALIZE_READONLY,
  ));
  const point = db.prepare(POINT_SQL);
  const range = db.prepare(RANGE_SQL);
  const close = () => {
    point.finalize();
    range.finalize();
    db.close();
  };
  if (api === "oo1") {
    const readAll = (stmt: typeof point): number => {
      let sum = 0;
      while (stmt.step()) sum += (stmt.get(0) as number) + ((stmt.get(1) as Uint8Array)[0] ?? 0);
      stmt.reset();
      return sum;
    };
    return {
      label: "raw sqlite-wasm (oo1)",
      async points(keys) {
        let sum = 0;
        for (const k of keys) sum += readAll(point.bind(1, k));
        return sum;
      },
      async ranges(starts) {
        let sum = 0;
        for (const k of starts) sum += readAll(range.bind([k, k + RANGE_ROWS - 1]));
        return sum;
      },
      close,
    };
  }
  const x = wasm.exports as unknown as RawExports;
  const readAll = (stmt: number): number => {
    let sum = 0;
    while (x.sqlite3_step(stmt) === SQLITE_ROW) {
      const at = x.sqlite3_column_blob(stmt, 1);
      const payload = wasm.heap8u().slice(at, at + x.sqlite3_column_bytes(stmt, 1));
      sum += x.sqlite3_column_int(stmt, 0) + (payload[0] ?? 0);
    }
    x.sqlite3_reset(stmt);
    return sum;
  };
  const p = point.pointer as number;
  const r = range.pointer as number;
  return {
    label: "raw sqlite-wasm (C API)",
    async points(keys) {
      let sum = 0;
      for (const k of keys) {
        x.sqlite3_bind_int(p, 1, k);
        sum += readAll(p);
      }
      return sum;
    },
    async ranges(starts) {
      let sum = 0;
      for (const k of starts) {
        x.sqlite3_bind_int(r, 1, k);
        x.sqlite3_bind_int(r, 2, k + RANGE_ROWS - 1);
        sum += readAll(r);
      }
      return sum;
    },
    close,
  };
}

function checksum(rows: Row[]): number {
  let sum = 0;
  for (const row of rows) sum += (row[0] as number) + (new Uint8Array(row[1] as ArrayBuffer)[0] ?? 0);
  return sum;
}
