/**
 * What SQLite says of a statement without running it: its parameters, result columns, and whether it is an
 * `EXPLAIN` or read-only. Hrana's `describe` request asks this; the statement is compiled on a guarded
 * connection, so a statement a replica refuses is refused here too.
 *
 * @module
 */

import { type Guard, prepareError, refuseWriting } from "./guard.ts";
import { sqliteError } from "./sqlite_error.ts";
import type { Sqlite3 } from "./vfs.ts";

/** A compiled statement's shape. */
export interface StatementDescription {
  /** One entry per parameter, in order: its name with its prefix (`:id`, `$x`, `?2`), or null for `?`. */
  params: { name: string | null }[];
  /** The result columns: names and declared types (null for an expression). */
  cols: { name: string; decltype: string | null }[];
  isExplain: boolean;
  isReadonly: boolean;
}

/**
 * Compiles the first statement of `sql` on connection `db` (guarded by `guard`), describes it and finalizes
 * it. Throws SQLite's error for SQL that does not compile or holds no statement, `SQLITE_AUTH` when the
 * authorizer refused it and `SQLITE_READONLY` for a statement that could write.
 */
export function describeStatement(
  sqlite3: Sqlite3,
  db: number,
  guard: Guard,
  sql: string,
): StatementDescription {
  const { capi, wasm } = sqlite3;
  const stack = wasm.pstack.pointer;
  let stmt: number;
  try {
    const ppStmt = wasm.pstack.allocPtr() as number;
    guard.reset();
    const rc = capi.sqlite3_prepare_v2(db, sql, -1, ppStmt, 0);
    if (rc !== 0) throw prepareError(sqlite3, db, rc, guard);
    stmt = wasm.peekPtr(ppStmt) as number;
  } finally {
    wasm.pstack.restore(stack);
  }
  if (stmt === 0) throw sqliteError(sqlite3, db, 0);
  refuseWriting(sqlite3, stmt);
  try {
    const params: { name: string | null }[] = [];
    for (let i = 1; i <= capi.sqlite3_bind_parameter_count(stmt); i++) {
      params.push({ name: capi.sqlite3_bind_parameter_name(stmt, i) ?? null });
    }
    const cols: { name: string; decltype: string | null }[] = [];
    for (let i = 0; i < capi.sqlite3_column_count(stmt); i++) {
      cols.push({
        name: capi.sqlite3_column_name(stmt, i) ?? "",
        decltype: capi.sqlite3_column_decltype(stmt, i) ?? null,
      });
    }
    return {
      params,
      cols,
      isExplain: capi.sqlite3_stmt_isexplain(stmt) > 0,
      isReadonly: capi.sqlite3_stmt_readonly(stmt) !== 0,
    };
  } finally {
    capi.sqlite3_finalize(stmt);
  }
}
