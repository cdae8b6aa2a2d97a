/**
 * The `LibsqlError` `@libsql/client` throws for a SQLite result code, built from a sqlite-wasm connection's
 * error state. Both the statements runner (sql.ts) and the guard (guard.ts) throw it.
 *
 * @module
 */

import { LibsqlError } from "@libsql/core/api";
import type sqlite3InitModule from "@sqlite.org/sqlite-wasm";

/** The sqlite-wasm module object (as `vfs.ts` names it; defined here too, so neither imports the other). */
type Sqlite3 = Awaited<ReturnType<typeof sqlite3InitModule>>;

/** The result codes `libsql` names; any other extended code is "UNKNOWN_SQLITE_ERROR_<n>". */
const NAMED_CODES = [
  "OK ERROR INTERNAL PERM ABORT BUSY LOCKED NOMEM READONLY INTERRUPT IOERR CORRUPT NOTFOUND FULL CANTOPEN PROTOCOL",
  "EMPTY SCHEMA TOOBIG CONSTRAINT MISMATCH MISUSE NOLFS AUTH FORMAT RANGE NOTADB NOTICE WARNING ROW DONE",
  "IOERR_READ IOERR_SHORT_READ IOERR_WRITE IOERR_FSYNC IOERR_DIR_FSYNC IOERR_TRUNCATE IOERR_FSTAT IOERR_UNLOCK",
  "IOERR_RDLOCK IOERR_DELETE IOERR_BLOCKED IOERR_NOMEM IOERR_ACCESS IOERR_CHECKRESERVEDLOCK IOERR_LOCK IOERR_CLOSE",
  "IOERR_DIR_CLOSE IOERR_SHMOPEN IOERR_SHMSIZE IOERR_SHMLOCK IOERR_SHMMAP IOERR_SEEK IOERR_DELETE_NOENT IOERR_MMAP",
  "IOERR_GETTEMPPATH IOERR_CONVPATH IOERR_VNODE IOERR_AUTH LOCKED_SHAREDCACHE BUSY_RECOVERY BUSY_SNAPSHOT",
  "CANTOPEN_NOTEMPDIR CANTOPEN_ISDIR CANTOPEN_FULLPATH CANTOPEN_CONVPATH CORRUPT_VTAB READONLY_RECOVERY",
  "READONLY_CANTLOCK READONLY_ROLLBACK READONLY_DBMOVED ABORT_ROLLBACK CONSTRAINT_CHECK CONSTRAINT_COMMITHOOK",
  "CONSTRAINT_FOREIGNKEY CONSTRAINT_FUNCTION CONSTRAINT_NOTNULL CONSTRAINT_PRIMARYKEY CONSTRAINT_TRIGGER",
  "CONSTRAINT_UNIQUE CONSTRAINT_VTAB CONSTRAINT_ROWID NOTICE_RECOVER_WAL NOTICE_RECOVER_ROLLBACK WARNING_AUTOINDEX",
  "AUTH_USER OK_LOAD_PERMANENTLY",
].join(" ").split(" ").map((name) => `SQLITE_${name}`);

let codeNames: Map<number, string> | undefined;

/**
 * The `LibsqlError` `@libsql/client` throws for SQLite result `rc` on `db`: `code` names the primary result
 * ("SQLITE_CONSTRAINT"), `extendedCode` the extended one ("SQLITE_CONSTRAINT_PRIMARYKEY"), `rawCode` is the
 * extended number, and the message is SQLite's, prefixed with `code` (`SQLITE_ERROR: no such table: t`).
 * `rc` may be primary; the extended code and message come from `db` when they describe the same error.
 *
 * @example A read-only database
 * ```ts
 * import sqlite3InitModule from "@sqlite.org/sqlite-wasm";
 * import { sqliteError } from "./sqlite_error.ts";
 *
 * const sqlite3 = await sqlite3InitModule();
 * const error = sqliteError(sqlite3, 0, 8);
 * console.log(error.message); // "SQLITE_READONLY: attempt to write a readonly database"
 * ```
 */
export function sqliteError(sqlite3: Sqlite3, db: number, rc: number): LibsqlError {
  const { capi } = sqlite3;
  const dbCode = db === 0 ? -1 : capi.sqlite3_extended_errcode(db);
  const fromDb = (dbCode & 0xff) === (rc & 0xff);
  const rawCode = fromDb ? dbCode : rc;
  const message = fromDb ? capi.sqlite3_errmsg(db) : capi.sqlite3_errstr(rawCode);
  const constants = capi as unknown as Record<string, number>;
  codeNames ??= new Map(NAMED_CODES.map((name) => [constants[name]!, name]));
  const extendedCode = codeNames.get(rawCode) ?? `UNKNOWN_SQLITE_ERROR_${rawCode}`;
  const base = rawCode & 0xff;
  const code = base >= 1 && base <= 28 ? codeNames.get(base)! : `SQLITE_UNKNOWN_${base}`;
  const cause = new SqliteError(message, extendedCode, rawCode);
  return new LibsqlError(message, code, extendedCode, rawCode, cause);
}

/** The `cause` of a SQLite `LibsqlError`, shaped like libsql's native `SqliteError`. */
class SqliteError extends Error {
  /** The extended result code's name. */
  code: string;
  rawCode: number;

  constructor(message: string, code: string, rawCode: number) {
    super(message);
    this.code = code;
    this.rawCode = rawCode;
  }
}
Object.defineProperty(SqliteError.prototype, "name", {
  value: "SqliteError",
  writable: true,
  configurable: true,
});
