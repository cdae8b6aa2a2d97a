/**
 * Running SQL on a sqlite-wasm connection with results identical to `@libsql/client` 0.18.0 on a local file:
 * the same rows, column types, integer modes, argument rules and `LibsqlError`s.
 *
 * @module
 */

import type sqlite3InitModule from "@sqlite.org/sqlite-wasm";
import {
  type InStatement,
  type IntMode,
  LibsqlError,
  type ResultSet,
  type Row,
  type Value,
} from "@libsql/core/api";
import {
  intToJs,
  readText,
  rowMaker,
  type SqlArgs,
  SqlResultSet,
  type SqlValue,
  toBindable,
  toSqlArgs,
} from "./_values.ts";
import {
  checkStatements,
  type Guard,
  guardConnection,
  missingDeniedFunctions,
  prepareError,
  refuseWriting,
  registerStubs,
} from "./guard.ts";
import { describeStatement, type StatementDescription } from "./describe.ts";
import { namelessParameterError, resultLimitError } from "./engine.ts";
import { sqliteError } from "./sqlite_error.ts";

// Also exported here: the engines (wasm.ts, native_gate.ts) build their SQLite errors with it too.
export { sqliteError };

/** The initialised sqlite-wasm module. */
export type Sqlite3 = Awaited<ReturnType<typeof sqlite3InitModule>>;

/** How many prepared statements a connection keeps, by SQL text. */
const CACHE_SIZE = 64;

const SQLITE_ROW = 100;
const SQLITE_DONE = 101;
const SQLITE_INTEGER = 1;
const SQLITE_FLOAT = 2;
const SQLITE_TEXT = 3;
const SQLITE_BLOB = 4;
const SQLITE_TRANSIENT = -1;
const SQLITE_PREPARE_PERSISTENT = 1;
const SQLITE_STMTSTATUS_REPREPARE = 5;
const INITIAL_SCRATCH = 256;
const SQLITE_LIMIT_LENGTH = 0;

/** The sqlite-wasm exports used per row and per value, called directly to skip the `capi` argument wrappers. */
interface Exports {
  sqlite3_step(stmt: number): number;
  sqlite3_reset(stmt: number): number;
  sqlite3_clear_bindings(stmt: number): number;
  sqlite3_stmt_status(stmt: number, op: number, reset: number): number;
  sqlite3_column_type(stmt: number, i: number): number;
  sqlite3_column_int64(stmt: number, i: number): bigint;
  sqlite3_column_double(stmt: number, i: number): number;
  sqlite3_column_text(stmt: number, i: number): number;
  sqlite3_column_blob(stmt: number, i: number): number;
  sqlite3_column_bytes(stmt: number, i: number): number;
  sqlite3_bind_null(stmt: number, i: number): number;
  sqlite3_bind_double(stmt: number, i: number, value: number): number;
  sqlite3_bind_int64(stmt: number, i: number, value: bigint): number;
  sqlite3_bind_text(stmt: number, i: number, text: number, bytes: number, destructor: number): number;
  sqlite3_bind_blob(stmt: number, i: number, blob: number, bytes: number, destructor: number): number;
  sqlite3_total_changes64(db: number): bigint;
  sqlite3_changes64(db: number): bigint;
  sqlite3_last_insert_rowid(db: number): bigint;
}

/** A cached prepared statement and what is known about it. */
interface Prepared {
  stmt: number;
  /** Parameter names by index (from 0), `null` for a nameless `?`. */
  params: (string | null)[];
  returnsRows: boolean;
  /** The statement's reprepare count when `columns` and `columnTypes` were read. */
  reprepares: number;
  columns: string[];
  columnTypes: string[];
  makeRow: (values: readonly Value[]) => Row;
}

const encoder = new TextEncoder();

/**
 * One sqlite-wasm connection (a `sqlite3*` the caller opened), executing statements exactly as
 * `@libsql/client` executes them on a local file. It keeps the last {@linkcode CACHE_SIZE} prepared statements
 * by SQL text and owns the connection: {@linkcode WasmConnection.close} closes it.
 *
 * @example Run a query
 * ```ts
 * import sqlite3InitModule from "@sqlite.org/sqlite-wasm";
 * import { WasmConnection } from "./sql.ts";
 *
 * const sqlite3 = await sqlite3InitModule();
 * const { capi, wasm } = sqlite3;
 * const stack = wasm.pstack.pointer;
 * const ppDb = wasm.pstack.allocPtr();
 * capi.sqlite3_open_v2(":memory:", ppDb, capi.SQLITE_OPEN_READWRITE | capi.SQLITE_OPEN_CREATE, 0);
 * const connection = new WasmConnection(sqlite3, wasm.peekPtr(ppDb) as number);
 * wasm.pstack.restore(stack);
 * console.log(connection.execute({ sql: "SELECT ? + 1 AS n", args: [1] }, "number").rows[0]?.n); // 2
 * connection.close();
 * ```
 */
const UNGUARDED: Guard = { denied: undefined, reset() {} };

/** SQLite instructions between two checks of a statement's clock. */
const PROGRESS_STEPS = 1000;

/**
 * Thrown when a statement ran past its slice on this thread ({@linkcode WasmConnection.sliceMs}): it read
 * only, so it may run again elsewhere (the engine's worker) under the whole time limit.
 */
export class SliceExpired extends Error {
  constructor() {
    super("The statement ran past its slice of this thread");
    this.name = "SliceExpired";
  }
}

/** The error for a statement SQLite interrupted at the time limit. */
export function timeLimitError(limitMs: number): LibsqlError {
  return new LibsqlError(
    `the statement ran longer than the time limit of ${limitMs} ms and was interrupted`,
    "SQLITE_INTERRUPT",
    "SQLITE_INTERRUPT",
    9,
  );
}

export class WasmConnection {
  #sqlite3: Sqlite3;
  #x: Exports;
  #db: number;
  #cache = new Map<string, Prepared>();
  #scratch = 0;
  #scratchSize = 0;
  #closed = false;
  readonly #guard: Guard | undefined;
  /** Longest a statement may run, in ms (0: no limit); past it SQLite interrupts it with `SQLITE_INTERRUPT`. */
  timeLimitMs = 0;
  /** When set (ms), a statement running longer is interrupted with {@linkcode SliceExpired}. */
  sliceMs = 0;
  /**
   * When set (ms since the epoch), the time limit counts from then rather than from when SQLite starts the
   * statement: a statement run again (after fetching chunks) or moved to the worker (after waiting in its
   * queue) keeps the clock it started with.
   */
  startedMs = 0;
  /**
   * Most rows a statement may return (0: no bound); one more fails the statement with `RESULT_TOO_LARGE`
   * (see engine.ts's `resultLimitError`) before it is read.
   */
  maxRows = 0;
  #maxBytes = 0;
  #deadline = 0;
  #sliceDeadline = 0;
  #stopped: "time" | "slice" | undefined;
  #progressInstalled = false;

  /**
   * Wraps an open connection.
   *
   * @param sqlite3 The sqlite-wasm module that opened `db`.
   * @param db The `sqlite3*` pointer; the connection now owns it.
   * @param options.guarded Install a replica's authorizer and refuse statements that could write
   * (see guard.ts). @default {false}
   */
  constructor(sqlite3: Sqlite3, db: number, options: { guarded?: boolean } = {}) {
    if (!Number.isInteger(db) || db <= 0) {
      throw new TypeError(`Cannot wrap SQLite connection ${db}: expected a sqlite3* pointer`);
    }
    this.#sqlite3 = sqlite3;
    this.#x = sqlite3.wasm.exports as Exports;
    this.#db = db;
    if (options.guarded) {
      this.#guard = guardConnection(sqlite3, db);
      // Denied functions this build lacks still reach the authorizer, so they fail as on libsql's build.
      registerStubs(sqlite3, db, missingDeniedFunctions(sqlite3, db));
    }
  }

  /**
   * Most bytes of values a statement may return, counted as engine.ts's `valueBytes` counts them (0: no
   * bound). A value that would pass it fails the statement with `RESULT_TOO_LARGE` before it is copied out of
   * SQLite: its size is read first (`sqlite3_column_bytes`, which does not expand a `zeroblob`).
   *
   * No single value longer than the bound can be returned, so SQLite is also told to build none
   * (`SQLITE_LIMIT_LENGTH`): otherwise `SELECT zeroblob(500000000)` would grow the wasm heap, which never
   * shrinks, by 500 MB before its row is seen. A statement that needs a longer value anywhere (an argument, a
   * stored value it reads whole, a sort key, a `group_concat`), even for a small result, then fails too: SQLite's
   * `SQLITE_TOOBIG` becomes the same `RESULT_TOO_LARGE`, its `cause` the SQLite error.
   */
  get maxBytes(): number {
    return this.#maxBytes;
  }
  set maxBytes(bytes: number) {
    this.#maxBytes = bytes;
    if (this.#closed) return;
    // Past SQLite's compiled-in maximum, sqlite3_limit keeps that maximum: the default.
    // The argument is a C int: a bound past it would wrap, so it is capped there.
    this.#sqlite3.capi.sqlite3_limit(
      this.#db,
      SQLITE_LIMIT_LENGTH,
      bytes > 0 ? Math.min(bytes, 0x7fffffff) : 0x7fffffff,
    );
  }

  /** True while a transaction is open (the connection is not in autocommit mode). */
  get inTransaction(): boolean {
    return !this.#closed && this.#sqlite3.capi.sqlite3_get_autocommit(this.#db) === 0;
  }

  /**
   * Runs the first statement in `stmt` (any following ones are ignored, as in libsql) and returns its rows, or
   * for a statement without result columns the rows it changed and the last inserted rowid.
   *
   * Throws `LibsqlError` for SQLite errors (including SQL with no statement), `RangeError` for an integer that
   * `intMode` "number" cannot hold exactly, and `TypeError`/`RangeError`/`Error` for arguments as libsql does.
   */
  execute(stmt: InStatement, intMode: IntMode): ResultSet {
    const sql = typeof stmt === "string" ? stmt : stmt.sql;
    return this.executeConverted(sql, typeof stmt === "string" ? [] : toSqlArgs(stmt.args, intMode), intMode);
  }

  /** Like {@linkcode WasmConnection.execute}, with arguments {@linkcode toSqlArgs} has converted already. */
  executeConverted(sql: string, args: SqlArgs, intMode: IntMode): ResultSet {
    this.#checkOpen();
    const prepared = this.#prepare(sql);
    const { stmt: handle } = prepared;
    this.#arm();
    try {
      this.#bind(prepared, args);
      return prepared.returnsRows ? this.#query(prepared, intMode) : this.#run(handle);
    } catch (error) {
      throw this.#stoppedError(error);
    } finally {
      this.#disarm();
      this.#x.sqlite3_reset(handle);
      this.#x.sqlite3_clear_bindings(handle);
    }
  }

  /** Runs every statement in `sql` in order (`sqlite3_exec`), stopping at the first error, which it throws. */
  executeMultiple(sql: string): void {
    this.#checkOpen();
    // Every statement is compiled and checked before the first runs; one that does not compile fails again
    // in sqlite3_exec, after those before it ran, as libsql's do.
    if (this.#guard) {
      checkStatements(this.#sqlite3, this.#db, this.#guard, sql, { all: true, strict: false });
    }
    const slice = this.sliceMs;
    // A script may begin or end a transaction: it is never moved to run elsewhere.
    this.sliceMs = 0;
    this.#arm();
    try {
      const rc = this.#sqlite3.capi.sqlite3_exec(this.#db, sql, 0, 0, 0);
      if (rc !== 0) throw this.#stoppedError(sqliteError(this.#sqlite3, this.#db, rc));
    } finally {
      this.#disarm();
      this.sliceMs = slice;
    }
  }

  /** Describes the first statement of `sql` without running it (see describe.ts). */
  describe(sql: string): StatementDescription {
    this.#checkOpen();
    return describeStatement(this.#sqlite3, this.#db, this.#guard ?? UNGUARDED, sql);
  }

  /** Finalizes the cached statements and closes the connection; later calls do nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const { capi, wasm } = this.#sqlite3;
    for (const prepared of this.#cache.values()) capi.sqlite3_finalize(prepared.stmt);
    this.#cache.clear();
    if (this.#scratch !== 0) wasm.dealloc(this.#scratch);
    this.#scratch = 0;
    capi.sqlite3_close_v2(this.#db);
  }

  #checkOpen(): void {
    if (this.#closed) throw new LibsqlError("The connection is closed", "CLIENT_CLOSED");
  }

  /** Starts the clock of a statement when a time limit or a slice is set. */
  #arm(): void {
    this.#stopped = undefined;
    if (this.timeLimitMs <= 0 && this.sliceMs <= 0) return;
    if (!this.#progressInstalled) {
      this.#sqlite3.capi.sqlite3_progress_handler(this.#db, PROGRESS_STEPS, () => this.#progress(), 0);
      this.#progressInstalled = true;
    }
    const now = Date.now();
    this.#deadline = this.timeLimitMs > 0 ? (this.startedMs || now) + this.timeLimitMs : 0;
    this.#sliceDeadline = this.sliceMs > 0 ? now + this.sliceMs : 0;
  }

  #disarm(): void {
    this.#deadline = 0;
    this.#sliceDeadline = 0;
  }

  // Called by SQLite every PROGRESS_STEPS instructions: non-zero interrupts the statement.
  #progress(): number {
    if (this.#deadline === 0 && this.#sliceDeadline === 0) return 0;
    const now = Date.now();
    if (this.#sliceDeadline !== 0 && now > this.#sliceDeadline) this.#stopped = "slice";
    else if (this.#deadline !== 0 && now > this.#deadline) this.#stopped = "time";
    return this.#stopped === undefined ? 0 : 1;
  }

  /**
   * What to throw for `error`: the time limit's or the slice's when the clock interrupted the statement,
   * `RESULT_TOO_LARGE` when SQLite refused a value longer than {@linkcode WasmConnection.maxBytes}.
   */
  #stoppedError(error: unknown): unknown {
    const stopped = this.#stopped;
    this.#stopped = undefined;
    if (stopped === "slice") return new SliceExpired();
    if (stopped === "time") return timeLimitError(this.timeLimitMs);
    if (this.#maxBytes > 0 && error instanceof LibsqlError && error.code === "SQLITE_TOOBIG") {
      // The wording of every bound's error, with SQLite's refusal as the cause.
      const { message } = resultLimitError({ maxRows: this.maxRows, maxBytes: this.#maxBytes }, "bytes");
      return new LibsqlError(
        message.replace(/^RESULT_TOO_LARGE: /, ""),
        "RESULT_TOO_LARGE",
        undefined,
        undefined,
        error,
      );
    }
    return error;
  }

  #prepare(sql: string): Prepared {
    const cached = this.#cache.get(sql);
    if (cached !== undefined) {
      this.#cache.delete(sql);
      this.#cache.set(sql, cached);
      return cached;
    }
    const { capi, wasm } = this.#sqlite3;
    const stack = wasm.pstack.pointer;
    let stmt: number;
    try {
      const ppStmt = wasm.pstack.allocPtr() as number;
      this.#guard?.reset();
      const rc = capi.sqlite3_prepare_v3(this.#db, sql, -1, SQLITE_PREPARE_PERSISTENT, ppStmt, null);
      if (rc !== 0) {
        throw this.#guard
          ? prepareError(this.#sqlite3, this.#db, rc, this.#guard)
          : sqliteError(this.#sqlite3, this.#db, rc);
      }
      stmt = wasm.peekPtr(ppStmt) as number;
    } finally {
      wasm.pstack.restore(stack);
    }
    if (this.#guard) refuseWriting(this.#sqlite3, stmt);
    // Only whitespace and comments: libsql reports SQLite's "not an error" as an error.
    if (stmt === 0) throw sqliteError(this.#sqlite3, this.#db, 0);
    const params: (string | null)[] = [];
    for (let i = 1; i <= capi.sqlite3_bind_parameter_count(stmt); i++) {
      params.push(capi.sqlite3_bind_parameter_name(stmt, i));
    }
    const prepared: Prepared = {
      stmt,
      params,
      returnsRows: capi.sqlite3_column_count(stmt) > 0,
      reprepares: -1,
      columns: [],
      columnTypes: [],
      makeRow: rowMaker([]),
    };
    this.#cache.set(sql, prepared);
    if (this.#cache.size > CACHE_SIZE) {
      const [oldest, evicted] = this.#cache.entries().next().value as [string, Prepared];
      this.#cache.delete(oldest);
      capi.sqlite3_finalize(evicted.stmt);
    }
    return prepared;
  }

  #bind(prepared: Prepared, args: SqlArgs): void {
    const { params, stmt } = prepared;
    let values: SqlValue[];
    if (Array.isArray(args)) {
      // libsql checks every argument, even those past the last parameter, which it then ignores.
      values = Array.from(args, toBindable).slice(0, params.length);
    } else {
      values = params.map((name, i) => {
        if (name === null) {
          throw namelessParameterError(i + 1);
        }
        return toBindable(args[name.substring(1)]);
      });
    }
    const x = this.#x;
    for (let i = 0; i < values.length; i++) {
      const value = values[i]!;
      let rc: number;
      if (value === null) rc = x.sqlite3_bind_null(stmt, i + 1);
      else if (typeof value === "number") rc = x.sqlite3_bind_double(stmt, i + 1, value);
      else if (typeof value === "bigint") rc = x.sqlite3_bind_int64(stmt, i + 1, value);
      else if (typeof value === "string") {
        const capacity = value.length * 3;
        const at = this.#reserve(capacity);
        const { written } = encoder.encodeInto(
          value,
          this.#sqlite3.wasm.heap8u().subarray(at, at + capacity),
        );
        rc = x.sqlite3_bind_text(stmt, i + 1, at, written, SQLITE_TRANSIENT);
      } else {
        const at = this.#reserve(value.length);
        this.#sqlite3.wasm.heap8u().set(value, at);
        rc = x.sqlite3_bind_blob(stmt, i + 1, at, value.length, SQLITE_TRANSIENT);
      }
      // A value longer than SQLITE_LIMIT_LENGTH is refused (the parameter would be left NULL).
      if (rc !== 0) throw sqliteError(this.#sqlite3, this.#db, rc);
    }
  }

  /** Grows the scratch buffer (never a null pointer, so empty text and blobs stay non-NULL) to `size` bytes. */
  #reserve(size: number): number {
    if (size > this.#scratchSize || this.#scratch === 0) {
      const { wasm } = this.#sqlite3;
      if (this.#scratch !== 0) wasm.dealloc(this.#scratch);
      this.#scratchSize = Math.max(INITIAL_SCRATCH, size);
      this.#scratch = wasm.alloc(this.#scratchSize) as number;
    }
    return this.#scratch;
  }

  #query(prepared: Prepared, intMode: IntMode): ResultSet {
    const x = this.#x;
    const { stmt } = prepared;
    const { maxRows, maxBytes } = this;
    const rows: Row[] = [];
    let rc = x.sqlite3_step(stmt);
    if (rc === SQLITE_ROW || rc === SQLITE_DONE) this.#describeColumns(prepared);
    // libsql converts values only after stepping through every row, so a SQLite error wins over a RangeError.
    let failed = false;
    let failure: unknown;
    let count = 0;
    let bytes = 0;
    const values: Value[] = [];
    const columns = prepared.columns.length;
    while (rc === SQLITE_ROW) {
      // Bounds are checked before a value is read: a result past one is never held, nor a value copied out.
      if (maxRows > 0 && ++count > maxRows) throw resultLimitError({ maxRows, maxBytes }, "rows");
      values.length = 0;
      for (let i = 0; i < columns; i++) {
        const type = x.sqlite3_column_type(stmt, i);
        if (maxBytes > 0) {
          bytes += type === SQLITE_TEXT || type === SQLITE_BLOB ? x.sqlite3_column_bytes(stmt, i) : 8;
          if (bytes > maxBytes) throw resultLimitError({ maxRows, maxBytes }, "bytes");
        }
        if (failed) continue;
        try {
          values.push(this.#readValue(stmt, i, type, intMode));
        } catch (error) {
          failed = true;
          failure = error;
        }
      }
      if (!failed) rows.push(prepared.makeRow(values));
      rc = x.sqlite3_step(stmt);
    }
    if (rc !== SQLITE_DONE) throw sqliteError(this.#sqlite3, this.#db, rc);
    if (failed) throw failure;
    return new SqlResultSet(prepared.columns.slice(), prepared.columnTypes.slice(), rows, 0, undefined);
  }

  /** Reads column names and declared types, again whenever SQLite recompiled the statement (schema change). */
  #describeColumns(prepared: Prepared): void {
    const reprepares = this.#x.sqlite3_stmt_status(prepared.stmt, SQLITE_STMTSTATUS_REPREPARE, 0);
    if (reprepares === prepared.reprepares) return;
    const { capi } = this.#sqlite3;
    const count = capi.sqlite3_column_count(prepared.stmt);
    prepared.columns = [];
    prepared.columnTypes = [];
    for (let i = 0; i < count; i++) {
      prepared.columns.push(capi.sqlite3_column_name(prepared.stmt, i) ?? "");
      prepared.columnTypes.push(capi.sqlite3_column_decltype(prepared.stmt, i) ?? "");
    }
    prepared.makeRow = rowMaker(prepared.columns);
    prepared.reprepares = reprepares;
  }

  /** Reads column `i`, of SQLite type `type` (`sqlite3_column_type`). */
  #readValue(stmt: number, i: number, type: number, intMode: IntMode): Value {
    const x = this.#x;
    switch (type) {
      case SQLITE_INTEGER: {
        if (intMode === "number") {
          // Exact whenever it is a safe integer; only larger values need the BigInt.
          const approximate = x.sqlite3_column_double(stmt, i);
          if (Number.isSafeInteger(approximate)) return approximate;
        }
        return intToJs(x.sqlite3_column_int64(stmt, i), intMode);
      }
      case SQLITE_FLOAT:
        return x.sqlite3_column_double(stmt, i);
      case SQLITE_TEXT: {
        const start = x.sqlite3_column_text(stmt, i);
        return readText(this.#sqlite3.wasm.heap8u(), start, start + x.sqlite3_column_bytes(stmt, i));
      }
      case SQLITE_BLOB: {
        const start = x.sqlite3_column_blob(stmt, i);
        const size = x.sqlite3_column_bytes(stmt, i);
        return this.#sqlite3.wasm.heap8u().slice(start, start + size).buffer;
      }
      default:
        return null;
    }
  }

  #run(stmt: number): ResultSet {
    const x = this.#x;
    const before = x.sqlite3_total_changes64(this.#db);
    let rc = x.sqlite3_step(stmt);
    while (rc === SQLITE_ROW) rc = x.sqlite3_step(stmt);
    if (rc !== SQLITE_DONE) throw sqliteError(this.#sqlite3, this.#db, rc);
    // As libsql: no change counted unless this statement changed rows (DDL keeps the previous count in SQLite).
    const changed = x.sqlite3_total_changes64(this.#db) !== before;
    const rowsAffected = changed ? Number(x.sqlite3_changes64(this.#db)) : 0;
    // libsql passes the rowid through a double, so rowids beyond 2^53 are rounded.
    const lastInsertRowid = BigInt(Number(x.sqlite3_last_insert_rowid(this.#db)));
    return new SqlResultSet([], [], [], rowsAffected, lastInsertRowid);
  }
}
