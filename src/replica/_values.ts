/**
 * Values crossing between JavaScript and SQLite the way `@libsql/client` 0.18.0 (its local `sqlite3` backend,
 * over the native `libsql` package) converts them, so a replica's results are indistinguishable from it.
 *
 * @module
 */

import type { InArgs, IntMode, InValue, ResultSet, Row, Value } from "@libsql/core/api";

/** The message `libsql` throws (as a plain `Error`) when an argument has a type SQLite cannot bind. */
export const UNBINDABLE_MESSAGE = "SQLite3 can only bind numbers, strings, bigints, buffers, and null";

/** A value ready to bind: JavaScript numbers always bind as REAL, bigints as INTEGER. */
export type SqlValue = null | number | bigint | string | Uint8Array;

/** Statement arguments after the client's conversions: positional, or named without their prefix. */
export type SqlArgs = unknown[] | Record<string, unknown>;

/** Text up to this many bytes is checked for ASCII in JavaScript before falling back to TextDecoder. */
const SHORT_TEXT = 64;
const decoder = new TextDecoder();
const MIN_SAFE = -9007199254740991n;
const MAX_SAFE = 9007199254740991n;
const MIN_INT64 = -9223372036854775808n;
const MAX_INT64 = 9223372036854775807n;

/**
 * Converts statement arguments as the client does before preparing: booleans follow `intMode`, a `Date` becomes
 * its epoch milliseconds, an `ArrayBuffer` its bytes, and a named argument loses one leading `:`, `@` or `$`.
 * Throws `RangeError` for a non-finite number or a bigint outside 64 bits and `TypeError` for `undefined`;
 * other unbindable values pass through and fail only when bound (see {@linkcode toBindable}).
 */
export function toSqlArgs(args: InArgs | undefined, intMode: IntMode): SqlArgs {
  if (Array.isArray(args)) return args.map((value) => toSqlValue(value, intMode));
  // The client walks `args` with for-in, so a missing `args` binds as an empty object (every name NULL).
  const named: Record<string, unknown> = {};
  for (const name in args) {
    const first = name[0];
    const key = first === ":" || first === "@" || first === "$" ? name.substring(1) : name;
    named[key] = toSqlValue(args[name] as InValue, intMode);
  }
  return named;
}

function toSqlValue(value: InValue | undefined, intMode: IntMode): unknown {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new RangeError("Only finite numbers (not Infinity or NaN) can be passed as arguments");
    }
    return value;
  }
  if (typeof value === "bigint") {
    if (value < MIN_INT64 || value > MAX_INT64) {
      throw new RangeError(
        "bigint is too large to be represented as a 64-bit integer and passed as argument",
      );
    }
    return value;
  }
  if (typeof value === "boolean") {
    if (intMode === "bigint") return value ? 1n : 0n;
    if (intMode === "string") return value ? "1" : "0";
    return value ? 1 : 0;
  }
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (value instanceof Date) return value.valueOf();
  if (value === undefined) throw new TypeError("undefined cannot be passed as argument to the database");
  return value;
}

/**
 * The value to bind for an argument after {@linkcode toSqlArgs}; a missing one (`undefined`) binds NULL.
 * Throws the plain `Error` `libsql` throws for anything else, such as an object or another typed array.
 */
export function toBindable(value: unknown): SqlValue {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case "number":
    case "bigint":
    case "string":
      return value;
  }
  if (value instanceof Uint8Array) return value;
  throw new Error(UNBINDABLE_MESSAGE);
}

/** A 64-bit integer in `intMode`; throws `RangeError` in "number" mode when it is not a safe integer. */
export function intToJs(value: bigint, intMode: IntMode): number | bigint | string {
  if (intMode === "number") {
    if (value < MIN_SAFE || value > MAX_SAFE) {
      throw new RangeError("Received integer which cannot be safely represented as a JavaScript number");
    }
    return Number(value);
  }
  if (intMode === "bigint") return value;
  if (intMode === "string") return "" + value;
  throw new Error("Invalid value for IntMode");
}

/**
 * A row as the client builds it: non-enumerable, read-only index properties and `length`, plus one enumerable,
 * writable property per column name; a name that is already a property (a repeated name, `length`, an index)
 * is skipped.
 */
export function makeRow(values: readonly Value[], columns: readonly string[]): Row {
  const row = {};
  Object.defineProperty(row, "length", { value: values.length });
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    Object.defineProperty(row, i, { value });
    const column = columns[i] as string;
    if (!Object.hasOwn(row, column)) {
      Object.defineProperty(row, column, { value, enumerable: true, configurable: true, writable: true });
    }
  }
  return row as Row;
}

/**
 * A function building rows for `columns` exactly as {@linkcode makeRow} does. When every name is distinct and
 * ordinary (not `length`, `__proto__` or an array index) it assigns the named properties, which V8 does several
 * times faster than defining them, with the same attributes and order.
 */
export function rowMaker(columns: readonly string[]): (values: readonly Value[]) => Row {
  const ordinary = new Set(columns).size === columns.length &&
    columns.every((name) => name !== "length" && name !== "__proto__" && !/^(0|[1-9][0-9]*)$/.test(name));
  if (!ordinary) return (values) => makeRow(values, columns);
  return (values) => {
    const row: Record<string, Value> = {};
    Object.defineProperty(row, "length", { value: values.length });
    for (let i = 0; i < values.length; i++) Object.defineProperty(row, i, { value: values[i] });
    for (let i = 0; i < values.length; i++) row[columns[i] as string] = values[i] as Value;
    return row as Row;
  };
}

/** A result shaped like the client's: the same fields in the same order, and the same `toJSON()`. */
export class SqlResultSet implements ResultSet {
  columns: string[];
  columnTypes: string[];
  rows: Row[];
  rowsAffected: number;
  lastInsertRowid: bigint | undefined;

  /** Creates a result; `lastInsertRowid` is `undefined` for statements that return rows. */
  constructor(
    columns: string[],
    columnTypes: string[],
    rows: Row[],
    rowsAffected: number,
    lastInsertRowid: bigint | undefined,
  ) {
    this.columns = columns;
    this.columnTypes = columnTypes;
    this.rows = rows;
    this.rowsAffected = rowsAffected;
    this.lastInsertRowid = lastInsertRowid;
  }

  /** Plain JSON: bigints as decimal strings, blobs as base64. */
  toJSON(): unknown {
    return {
      columns: this.columns,
      columnTypes: this.columnTypes,
      rows: this.rows.map((row) => Array.prototype.map.call(row, valueToJson)),
      rowsAffected: this.rowsAffected,
      lastInsertRowid: this.lastInsertRowid !== undefined ? "" + this.lastInsertRowid : null,
    };
  }
}

function valueToJson(value: unknown): unknown {
  if (typeof value === "bigint") return "" + value;
  if (value instanceof ArrayBuffer) return toBase64(new Uint8Array(value));
  return value;
}

/** Standard, padded base64, as `js-base64`'s `fromUint8Array` writes it. */
function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/**
 * The UTF-8 text in `heap` from `start` to `end`, up to its first NUL: libsql reads a value as a C string.
 * Invalid UTF-8 becomes U+FFFD (libsql aborts the process instead).
 */
export function readText(heap: Uint8Array, start: number, end: number): string {
  if (end - start > SHORT_TEXT) {
    const bytes = heap.subarray(start, end);
    const nul = bytes.indexOf(0);
    return decoder.decode(nul === -1 ? bytes : bytes.subarray(0, nul));
  }
  // Short ASCII, the common case, is cheaper to build directly than through TextDecoder.
  let ascii = true;
  let i = start;
  for (; i < end; i++) {
    const byte = heap[i]!;
    if (byte === 0) break;
    if (byte >= 0x80) ascii = false;
  }
  return ascii ? String.fromCharCode(...heap.subarray(start, i)) : decoder.decode(heap.subarray(start, i));
}
