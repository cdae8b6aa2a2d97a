/**
 * What a replica lets SQL do, enforced by SQLite itself on a sqlite-wasm connection: an authorizer
 * (`sqlite3_set_authorizer`) that refuses every action able to open, create or write a file or to change the
 * connection, `SQLITE_LIMIT_ATTACHED` at 0, and `sqlite3_stmt_readonly` on every compiled statement before it
 * runs. The wasm engine guards the connections that run queries; the native engine, whose `libsql` 0.5
 * binding offers no usable authorizer, compiles each statement on a guarded connection first (see
 * `native_gate.ts`).
 *
 * Refused, with `SQLITE_AUTH` when the authorizer denies an action while SQLite compiles the statement:
 * `ATTACH` (any file, `:memory:` too) and `DETACH`; every `PRAGMA` except the reads in
 * {@linkcode READ_PRAGMAS}; the functions in {@linkcode DENIED_FUNCTIONS}; the `fsdir` table; `CREATE TEMP`
 * tables, indexes, views, triggers and virtual tables. Refused with `SQLITE_READONLY` when SQLite reports
 * the compiled statement is not read-only: every write, `VACUUM` and `VACUUM INTO` (whose own internal
 * `ATTACH` the authorizer and the limit refuse too, should one be stepped).
 *
 * @module
 */

import { LibsqlError } from "@libsql/core/api";
import { sqliteError } from "./sqlite_error.ts";
import type { Sqlite3 } from "./vfs.ts";

/** Pragmas a replica answers: each reads and changes nothing (asked with no argument). */
export const READ_PRAGMAS: ReadonlySet<string> = new Set([
  "application_id",
  "auto_vacuum",
  "cache_size",
  "collation_list",
  "compile_options",
  "data_version",
  "database_list",
  "encoding",
  "foreign_key_check",
  "foreign_key_list",
  "foreign_keys",
  "freelist_count",
  "function_list",
  "index_info",
  "index_list",
  "index_xinfo",
  "integrity_check",
  "max_page_count",
  "module_list",
  "page_count",
  "page_size",
  "pragma_list",
  "query_only",
  "quick_check",
  "schema_version",
  "table_info",
  "table_list",
  "table_xinfo",
  "user_version",
]);

/** The read pragmas whose argument names what to read (a table, an index) rather than a new value. */
const ARGUMENT_NAMES_OBJECT = new Set([
  "foreign_key_check",
  "foreign_key_list",
  "index_info",
  "index_list",
  "index_xinfo",
  "integrity_check",
  "quick_check",
  "table_info",
  "table_list",
  "table_xinfo",
]);

/**
 * Functions a replica refuses: they load code, read or write files, run SQL of their own or change settings
 * of the whole process. Most exist only in some builds (libsql's has `writefile`, `readfile` and the
 * SQLite3 Multiple Ciphers functions); the wasm engine registers stubs of those it lacks, so each is
 * refused the same way on both engines.
 */
export const DENIED_FUNCTIONS: ReadonlySet<string> = new Set([
  "edit",
  "fts3_tokenizer",
  "load_extension",
  "readfile",
  "sha3_query",
  "sqlite3mc_codec_data",
  "sqlite3mc_config",
  "sqlite3mc_config_table",
  "sqlite_crypt",
  "writefile",
]);

/** Tables (table-valued functions) a replica refuses: `fsdir` lists the server's directories. */
const DENIED_TABLES = new Set(["fsdir"]);

const SQLITE_LIMIT_ATTACHED = 7;

/** The authorizer and what it last refused, for one connection. */
export interface Guard {
  /** What the authorizer refused since the last {@linkcode Guard.reset}, described for an error message. */
  readonly denied: string | undefined;
  reset(): void;
}

/**
 * Installs the replica's authorizer and limits on sqlite-wasm connection `db`.
 *
 * @example
 * ```ts
 * import sqlite3InitModule from "@sqlite.org/sqlite-wasm";
 * import { guardConnection } from "./guard.ts";
 *
 * const sqlite3 = await sqlite3InitModule();
 * const db = new sqlite3.oo1.DB(":memory:");
 * const guard = guardConnection(sqlite3, db.pointer!);
 * try {
 *   db.exec("ATTACH 'x.db' AS x");
 * } catch {
 *   console.log(guard.denied); // 'ATTACH "x.db"'
 * }
 * ```
 */
export function guardConnection(sqlite3: Sqlite3, db: number): Guard {
  const { capi } = sqlite3;
  const state = { denied: undefined as string | undefined };
  const deny = (what: string) => {
    state.denied ??= what;
    return capi.SQLITE_DENY;
  };
  // Absent string arguments arrive as 0, not null.
  const text = (value: unknown) => (typeof value === "string" ? value : undefined);
  const authorize = (_user: number, action: number, a: unknown, b: unknown): number => {
    try {
      switch (action) {
        case capi.SQLITE_ATTACH:
          return deny(`ATTACH ${JSON.stringify(text(a) ?? "")}`);
        case capi.SQLITE_DETACH:
          return deny("DETACH");
        case capi.SQLITE_PRAGMA: {
          const name = (text(a) ?? "").toLowerCase();
          const argument = text(b);
          if (READ_PRAGMAS.has(name) && (argument === undefined || ARGUMENT_NAMES_OBJECT.has(name))) return 0;
          return deny(`PRAGMA ${name}${argument === undefined ? "" : ` = ${argument}`}`);
        }
        case capi.SQLITE_FUNCTION: {
          const name = (text(b) ?? "").toLowerCase();
          return DENIED_FUNCTIONS.has(name) ? deny(`the function ${name}()`) : 0;
        }
        case capi.SQLITE_READ:
          return DENIED_TABLES.has((text(a) ?? "").toLowerCase()) ? deny(`the table ${text(a)}`) : 0;
        case capi.SQLITE_CREATE_TEMP_TABLE:
        case capi.SQLITE_CREATE_TEMP_INDEX:
        case capi.SQLITE_CREATE_TEMP_VIEW:
        case capi.SQLITE_CREATE_TEMP_TRIGGER:
        case capi.SQLITE_CREATE_VTABLE:
          return deny("CREATE TEMP (temporary objects)");
        default:
          return 0;
      }
    } catch {
      // An exception must not unwind through SQLite's C frames.
      return capi.SQLITE_DENY;
    }
  };
  const rc = capi.sqlite3_set_authorizer(db, authorize as never, 0);
  if (rc !== 0) throw new Error(`Cannot install the replica's SQL authorizer: SQLite result ${rc}`);
  // Belt and braces: with no room for an attached database, ATTACH fails even if it were authorized.
  capi.sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
  return {
    get denied() {
      return state.denied;
    },
    reset() {
      state.denied = undefined;
    },
  };
}

/** The error a replica throws when its authorizer refused `what`. */
export function notAuthorized(what: string): LibsqlError {
  return new LibsqlError(
    `not authorized: a replica is read-only and refuses ${what}`,
    "SQLITE_AUTH",
    "SQLITE_AUTH",
    23,
  );
}

/** The `SQLITE_READONLY` error libsql throws for a write to a read-only database. */
function readonlyError(sqlite3: Sqlite3): LibsqlError {
  return sqliteError(sqlite3, 0, sqlite3.capi.SQLITE_READONLY);
}

/**
 * Refuses a statement SQLite compiled on a guarded connection: throws `SQLITE_READONLY` (and finalizes
 * `stmt`) when SQLite reports that running it could write (writes, `VACUUM`, `VACUUM INTO`, ...).
 */
export function refuseWriting(sqlite3: Sqlite3, stmt: number): void {
  if (stmt === 0 || sqlite3.capi.sqlite3_stmt_readonly(stmt)) return;
  sqlite3.capi.sqlite3_finalize(stmt);
  throw readonlyError(sqlite3);
}

/** The error for a failed prepare on a guarded connection: `SQLITE_AUTH` when the authorizer refused. */
export function prepareError(sqlite3: Sqlite3, db: number, rc: number, guard: Guard): LibsqlError {
  return guard.denied === undefined ? sqliteError(sqlite3, db, rc) : notAuthorized(guard.denied);
}

/** Options of {@linkcode checkStatements}. */
export interface CheckOptions {
  /** Check every statement of the text (`executeMultiple`), not just the first (`execute`). */
  all: boolean;
  /**
   * Throw SQLite's error when a statement does not compile. Off, checking stops there: the same SQLite
   * will fail on it again when the text runs.
   */
  strict: boolean;
}

/**
 * Compiles each statement of `sql` on guarded connection `db` without running it, and throws when the
 * authorizer or {@linkcode refuseWriting} refuses one.
 */
export function checkStatements(
  sqlite3: Sqlite3,
  db: number,
  guard: Guard,
  sql: string,
  options: CheckOptions,
): void {
  const { capi, wasm } = sqlite3;
  const pSql = wasm.allocCString(sql, false) as number;
  const stack = wasm.pstack.pointer;
  try {
    const ppStmt = wasm.pstack.allocPtr() as number;
    const pzTail = wasm.pstack.allocPtr() as number;
    let at = pSql;
    for (;;) {
      guard.reset();
      const rc = capi.sqlite3_prepare_v3(db, at, -1, 0, ppStmt, pzTail);
      if (rc !== 0) {
        if (guard.denied !== undefined || options.strict) throw prepareError(sqlite3, db, rc, guard);
        return;
      }
      const stmt = wasm.peekPtr(ppStmt) as number;
      const tail = wasm.peekPtr(pzTail) as number;
      if (stmt !== 0) {
        refuseWriting(sqlite3, stmt);
        capi.sqlite3_finalize(stmt);
        if (!options.all) return;
      }
      if (tail <= at || wasm.peek8(tail) === 0) return;
      at = tail;
    }
  } finally {
    wasm.pstack.restore(stack);
    wasm.dealloc(pSql);
  }
}

/**
 * Registers functions that do nothing under `names` on connection `db`, so that SQLite compiles calls to
 * them and the authorizer decides. `names` maps a name to its argument count and whether it aggregates.
 */
export function registerStubs(
  sqlite3: Sqlite3,
  db: number,
  names: Iterable<{ name: string; narg: number; aggregate: boolean }>,
): void {
  const { capi } = sqlite3;
  // sqlite-wasm makes a JS function's return value the SQL result.
  const scalar = () => null;
  const step = () => null;
  for (const { name, narg, aggregate } of names) {
    const rc = aggregate
      ? capi.sqlite3_create_function_v2(db, name, narg, capi.SQLITE_UTF8, 0, 0, step, scalar, 0)
      : capi.sqlite3_create_function_v2(db, name, narg, capi.SQLITE_UTF8, 0, scalar, 0, 0, 0);
    if (rc !== 0) throw sqliteError(sqlite3, db, rc);
  }
}

/** The functions connection `db` knows, by lower-cased name (from `PRAGMA function_list`). */
export function functionNames(sqlite3: Sqlite3, db: number): Set<string> {
  const { capi, wasm } = sqlite3;
  const names = new Set<string>();
  const stack = wasm.pstack.pointer;
  try {
    const ppStmt = wasm.pstack.allocPtr() as number;
    const rc = capi.sqlite3_prepare_v2(db, "SELECT name FROM pragma_function_list", -1, ppStmt, 0);
    if (rc !== 0) throw sqliteError(sqlite3, db, rc);
    const stmt = wasm.peekPtr(ppStmt) as number;
    try {
      while (capi.sqlite3_step(stmt) === capi.SQLITE_ROW) {
        names.add(String(capi.sqlite3_column_text(stmt, 0)).toLowerCase());
      }
    } finally {
      capi.sqlite3_finalize(stmt);
    }
  } finally {
    wasm.pstack.restore(stack);
  }
  return names;
}

const missing = new WeakMap<Sqlite3, { name: string; narg: number; aggregate: boolean }[]>();

/** The {@linkcode DENIED_FUNCTIONS} connection `db` lacks (the same for every connection of a module). */
export function missingDeniedFunctions(
  sqlite3: Sqlite3,
  db: number,
): { name: string; narg: number; aggregate: boolean }[] {
  let stubs = missing.get(sqlite3);
  if (!stubs) {
    const known = functionNames(sqlite3, db);
    stubs = [...DENIED_FUNCTIONS].filter((name) => !known.has(name))
      .map((name) => ({ name, narg: -1, aggregate: false }));
    missing.set(sqlite3, stubs);
  }
  return stubs;
}
