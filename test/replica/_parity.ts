/**
 * A corpus of statements and a comparator for checking that an engine returns exactly what `@libsql/client`
 * returns: the same columns, declared types, values (types included), row shapes, JSON and errors.
 *
 * Build a database with {@linkcode PARITY_SCHEMA_SQL} (through `executeMultiple`), then run each of
 * {@linkcode PARITY_CASES} on both engines under each of its integer modes and compare with
 * {@linkcode assertSameResult}.
 *
 * @module
 */

import { type Client, createClient } from "@libsql/client";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { InStatement, IntMode, ResultSet } from "@libsql/core/api";

/** Every integer mode the client supports. */
export const INT_MODES: readonly IntMode[] = ["number", "bigint", "string"];

/**
 * Tables, an index, a view and rows covering SQLite's value types and their edges: integers past 2^53 and at
 * the 64-bit limits, -0.0 and 1e308, empty, emoji and NUL-containing text, empty and 100 KB blobs, NULLs,
 * a WITHOUT ROWID table and 2,000 rows for range scans.
 */
export const PARITY_SCHEMA_SQL = `
CREATE TABLE kinds (
  id INTEGER PRIMARY KEY,
  i INTEGER,
  r REAL,
  t TEXT,
  b BLOB,
  n NUMERIC,
  v VARCHAR(20),
  d DATETIME,
  f BOOLEAN,
  u
);
INSERT INTO kinds VALUES
  (1, 0, 0.0, '', x'', 0, '', '2024-01-01 00:00:00', 0, NULL),
  (2, 9007199254740991, -0.0, 'héllo wörld', x'00ff10', 12.5, 'ünïcödé', '2024-02-29T12:34:56Z', 1, 42),
  (3, 9007199254740992, 1e308, '😀 emoji 🎉 𝄞', randomblob(102400), '123', 'x', 1700000000, 1, 'text'),
  (4, -9223372036854775808, -1.5, 'a' || char(0) || 'b', NULL, '1e3', NULL, NULL, NULL, x'cafe'),
  (5, 9223372036854775807, 5e-324, NULL, zeroblob(16), 'abc', 'v', NULL, 'yes', 3.25),
  (6, -9007199254740991, 1.7976931348623157e308, 'line1' || char(10) || 'tab	"quote" ''apos''', x'', NULL,
    NULL, NULL, NULL, -7),
  (7, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (8, -1, 0.1, '  spaced  ', x'ff', -0.0, '', '', '', ''),
  (9, 1, 2.0, replace(hex(zeroblob(100)), '00', 'ab') || char(0) || 'hidden', NULL, NULL, NULL, NULL, NULL, NULL);

CREATE TABLE items (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  category TEXT NOT NULL,
  price REAL,
  qty INTEGER,
  payload BLOB,
  created_at TEXT
);
CREATE INDEX items_by_category ON items (category, price);
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 2000)
INSERT INTO items (id, name, category, price, qty, payload, created_at)
SELECT n, 'item ' || n, char(97 + n % 7) || '-cat', round(n * 1.37 % 500, 2), (n * 7919) % 1000 - 100,
  CASE WHEN n % 10 = 0 THEN NULL ELSE unhex(printf('%08x', n * 2654435761 % 4294967296)) END,
  datetime(1700000000 + n * 3600, 'unixepoch')
FROM seq;

CREATE TABLE tags (
  item_id INTEGER NOT NULL,
  tag TEXT NOT NULL,
  weight REAL,
  PRIMARY KEY (item_id, tag)
) WITHOUT ROWID;
INSERT INTO tags SELECT id, 'tag' || (id % 3), id / 10.0 FROM items WHERE id % 2 = 0;
INSERT INTO tags SELECT id, 'fifth', NULL FROM items WHERE id % 5 = 0;

CREATE VIEW category_totals AS
  SELECT category, count(*) AS items, sum(qty) AS total_qty, round(avg(price), 4) AS avg_price
  FROM items GROUP BY category;

CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT);
INSERT INTO docs VALUES
  (1, '{"name":"alpha","tags":["x","y"],"n":1,"nested":{"ok":true,"big":9007199254740993}}'),
  (2, '{"name":"beta","tags":[],"n":2.5,"nested":null}'),
  (3, '[1,2,3]');
`;

/** One statement to run under some integer modes. */
export interface ParityCase {
  /** What the case covers, as a phrase. */
  name: string;
  stmt: InStatement;
  /** The modes to run it under; all of {@linkcode INT_MODES} when absent. */
  intModes?: IntMode[];
  /** The error class name or `code` the client throws; absent when it returns a result. */
  throws?: string;
}

const date = new Date(Date.UTC(2024, 1, 29, 12, 34, 56, 789));

/** Statements whose results an engine must reproduce exactly; the database is opened read-only. */
export const PARITY_CASES: ParityCase[] = [
  { name: "a point select by rowid", stmt: { sql: "SELECT * FROM items WHERE id = ?", args: [42] } },
  {
    name: "a point select that finds nothing",
    stmt: { sql: "SELECT * FROM items WHERE id = ?", args: [-1] },
  },
  { name: "a :name argument", stmt: { sql: "SELECT id, name FROM items WHERE id = :id", args: { id: 7 } } },
  { name: "an @name argument given with its prefix", stmt: { sql: "SELECT @id AS v", args: { "@id": 8 } } },
  { name: "a $name argument given with its prefix", stmt: { sql: "SELECT $id, $id + 1", args: { $id: 9 } } },
  {
    name: "one name under three prefixes",
    stmt: { sql: "SELECT :a, @a, $a, :b", args: { ":a": "colon", $b: "dollar" } },
  },
  {
    name: "?NNN arguments by position",
    stmt: { sql: "SELECT ?2 AS b, ?1 AS a, ?2 || ?1", args: ["x", "y"] },
  },
  { name: "?NNN arguments by name", stmt: { sql: "SELECT ?2, ?1", args: { "1": "one", "2": "two" } } },
  { name: "missing positional arguments bind NULL", stmt: { sql: "SELECT ?, ?, ?5", args: [1] } },
  { name: "extra positional arguments are ignored", stmt: { sql: "SELECT ?", args: [1, "two", 3n] } },
  { name: "missing and extra named arguments", stmt: { sql: "SELECT :a, :b", args: { a: 1, z: 2 } } },
  { name: "a statement without args and a named parameter", stmt: { sql: "SELECT :a IS NULL" } },
  {
    name: "booleans, a Date, a bigint and null",
    stmt: {
      sql: "SELECT ?, ?, ?, ?, ?, typeof(?1), typeof(?3), typeof(?4)",
      args: [true, false, date, -42n, null],
    },
  },
  {
    name: "numbers always bind as REAL",
    stmt: { sql: "SELECT ?, ?, ?, typeof(?1), ?1 = 1, ?3 * 2", args: [1, 2.5, -0] },
  },
  {
    name: "64-bit bigint limits",
    stmt: { sql: "SELECT ?, ?, typeof(?1)", args: [-9223372036854775808n, 9223372036854775807n] },
    intModes: ["bigint", "string"],
  },
  {
    name: "an unsafe bigint read back in number mode",
    stmt: { sql: "SELECT ?, ?", args: [9007199254740991n, 9007199254740993n] },
    intModes: ["number"],
    throws: "RangeError",
  },
  {
    name: "Uint8Array, ArrayBuffer and empty blob arguments",
    stmt: {
      sql: "SELECT ?, ?, ?, hex(?1), typeof(?2), length(?3), quote(?3)",
      args: [new Uint8Array([0, 1, 254, 255]), new Uint8Array([5, 6, 7]).buffer, new Uint8Array(0)],
    },
  },
  {
    name: "text arguments with unicode, NUL and nothing",
    stmt: { sql: "SELECT ?, hex(?1), length(?1), ?, hex(?2), ?3, typeof(?3)", args: ["ünï 😀", "a\0b", ""] },
  },
  {
    name: "a range scan in descending order with a limit",
    stmt: {
      sql: "SELECT id, name, price FROM items WHERE id BETWEEN ? AND ? ORDER BY id DESC LIMIT 50",
      args: [100, 400],
    },
  },
  {
    name: "an index range scan with an offset",
    stmt: {
      sql: "SELECT * FROM items WHERE category = ? AND price > ? ORDER BY price, id LIMIT 20 OFFSET 5",
      args: ["c-cat", 100.5],
    },
  },
  { name: "every row of a 2,000-row table", stmt: "SELECT * FROM items ORDER BY id" },
  {
    name: "an IN list of arguments",
    stmt: { sql: "SELECT id FROM items WHERE id IN (?, ?, ?)", args: [3, 1, 2] },
  },
  {
    name: "aggregates",
    stmt: "SELECT count(*), sum(qty), avg(price), min(name), max(price), total(qty), group_concat(id) " +
      "FROM items WHERE id < 100",
  },
  {
    name: "a GROUP BY with HAVING",
    stmt:
      "SELECT category, count(*) AS n, sum(qty) FROM items GROUP BY category HAVING n > 1 ORDER BY n DESC",
  },
  {
    name: "a join",
    stmt: "SELECT i.id, i.name, t.tag, t.weight FROM items i JOIN tags t ON t.item_id = i.id " +
      "WHERE i.id < 50 ORDER BY i.id, t.tag",
  },
  {
    name: "a left join with NULLs",
    stmt: "SELECT i.id, t.tag FROM items i LEFT JOIN tags t ON t.item_id = i.id AND t.tag = 'fifth' " +
      "WHERE i.id <= 12 ORDER BY i.id",
  },
  { name: "a view", stmt: "SELECT * FROM category_totals ORDER BY category" },
  {
    name: "a WITHOUT ROWID table",
    stmt: { sql: "SELECT * FROM tags WHERE item_id = ? ORDER BY tag", args: [10] },
  },
  {
    name: "expressions without a declared type",
    stmt: "SELECT 1, 1.5, 'x', x'0102', NULL, 2 + 3, -0.0, 1e308, -1e999, CAST(1 AS REAL), 10 / 4, 10 % 4",
  },
  {
    name: "a window function",
    stmt: "SELECT id, sum(qty) OVER (ORDER BY id ROWS 2 PRECEDING) AS s FROM items WHERE id <= 20",
  },
  {
    name: "a recursive CTE",
    stmt: "WITH RECURSIVE f(n, v) AS (SELECT 1, 1 UNION ALL SELECT n + 1, v * 3 FROM f WHERE n < 30) " +
      "SELECT n, v FROM f",
  },
  { name: "rowid alongside *", stmt: "SELECT rowid, * FROM items ORDER BY rowid LIMIT 3" },
  { name: "VALUES", stmt: "VALUES (1, 'a'), (2, NULL)" },
  {
    name: "repeated and awkward column names",
    stmt: "SELECT 1 AS a, 2 AS a, 3 AS length, 4 AS '0', 5 AS '7', 6 AS __proto__, 7 AS constructor, 8 AS ''",
  },
  { name: "every kind of value", stmt: "SELECT * FROM kinds ORDER BY id", intModes: ["bigint", "string"] },
  {
    name: "an unsafe integer in number mode",
    stmt: "SELECT * FROM kinds ORDER BY id",
    intModes: ["number"],
    throws: "RangeError",
  },
  {
    name: "safe integers at the limits",
    stmt:
      "SELECT id, i, typeof(i) FROM kinds WHERE i BETWEEN -9007199254740991 AND 9007199254740991 ORDER BY id",
  },
  { name: "reals", stmt: "SELECT id, r, typeof(r), r * 2 FROM kinds ORDER BY id" },
  {
    name: "short and long text with a NUL",
    stmt: "SELECT t, length(t), hex(t) FROM kinds WHERE id IN (4, 9)",
  },
  { name: "unicode text", stmt: "SELECT id, t, length(t), upper(t) FROM kinds WHERE id IN (2, 3, 6, 8)" },
  { name: "a 100 KB blob", stmt: "SELECT b, length(b) FROM kinds WHERE id = 3" },
  { name: "empty and NULL blobs", stmt: "SELECT id, b, typeof(b), u FROM kinds WHERE id IN (1, 4, 6, 7)" },
  {
    name: "NUMERIC, VARCHAR and BOOLEAN affinity",
    stmt: "SELECT n, typeof(n), v, d, f, typeof(f) FROM kinds",
  },
  { name: "PRAGMA table_info", stmt: "PRAGMA table_info(kinds)" },
  { name: "PRAGMA index_list", stmt: "PRAGMA index_list(items)" },
  {
    name: "sqlite_schema",
    stmt: "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_schema ORDER BY name",
  },
  {
    name: "JSON functions",
    stmt: "SELECT id, json_extract(body, '$.name'), body ->> '$.n', body -> '$.nested', " +
      "json_array_length(body, '$.tags'), json_type(body), json_valid(body) FROM docs ORDER BY id",
  },
  { name: "json_each", stmt: "SELECT key, value, type FROM docs, json_each(docs.body) WHERE docs.id = 1" },
  {
    name: "json_object and json_group_array",
    stmt: "SELECT json_object('id', id, 'qty', qty), json_group_array(name) FROM items WHERE id <= 3",
  },
  { name: "only the first of several statements runs", stmt: "SELECT 1; SELECT 2" },
  { name: "a leading empty statement", stmt: "; SELECT 'after'" },
  { name: "SQL that ends at a NUL character", stmt: "SELECT 'before'\0 garbage" },
  { name: "a NUL inside a string literal", stmt: "SELECT 'a\0b'", throws: "SQLITE_ERROR" },
  {
    name: "a write to the read-only database",
    stmt: "INSERT INTO docs (body) VALUES ('x')",
    throws: "SQLITE_READONLY",
  },
  { name: "a syntax error", stmt: "SELEC 1", throws: "SQLITE_ERROR" },
  { name: "a missing table", stmt: "SELECT * FROM nope", throws: "SQLITE_ERROR" },
  { name: "a missing column", stmt: "SELECT nope FROM items", throws: "SQLITE_ERROR" },
  { name: "a wrong argument count", stmt: "SELECT abs(1, 2)", throws: "SQLITE_ERROR" },
  { name: "an error while stepping", stmt: "SELECT abs(-9223372036854775807 - 1)", throws: "SQLITE_ERROR" },
  {
    name: "an error while stepping after an unsafe integer",
    stmt:
      "SELECT CASE WHEN value < 3 THEN 9007199254740993 ELSE json('not json') END FROM json_each('[1,2,3]')",
    throws: "SQLITE_ERROR",
  },
  { name: "SQL with no statement", stmt: "-- nothing", throws: "SQLITE_UNKNOWN_0" },
  {
    name: "an undefined argument",
    stmt: { sql: "SELECT ?", args: [undefined as never] },
    throws: "TypeError",
  },
  { name: "a NaN argument", stmt: { sql: "SELECT ?", args: [NaN] }, throws: "RangeError" },
  { name: "a bigint past 64 bits", stmt: { sql: "SELECT ?", args: [2n ** 63n] }, throws: "RangeError" },
  { name: "an object argument", stmt: { sql: "SELECT ?", args: [{} as never] }, throws: "Error" },
  {
    name: "an unbindable argument past the last parameter",
    stmt: { sql: "SELECT 1", args: [1, new Int16Array(2) as never] },
    throws: "Error",
  },
  {
    name: "a syntax error before a bad argument",
    stmt: { sql: "SELEC ?", args: [{} as never] },
    throws: "SQLITE_ERROR",
  },
];

/** A value described so that `deepStrictEqual` tells apart every type (and -0, and blob bytes). */
export type ValueShape = null | [type: string, text: string];

/** A result or an error, as comparable plain data. */
export type Outcome =
  | {
    ok: true;
    keys: string[];
    columns: string[];
    columnTypes: string[];
    rowsAffected: number;
    lastInsertRowid: ValueShape;
    json: string;
    rows: RowShape[];
  }
  | { ok: false; error: ErrorShape };

/** A row: its values by index and by name, its own properties, and how the first index and name are defined. */
export interface RowShape {
  length: unknown;
  values: ValueShape[];
  named: [string, ValueShape][];
  keys: string[];
  ownNames: string[];
  plainObject: boolean;
  firstIndex: DescriptorShape | undefined;
  firstName: DescriptorShape | undefined;
}

interface DescriptorShape {
  value: ValueShape;
  writable: boolean | undefined;
  enumerable: boolean | undefined;
  configurable: boolean | undefined;
}

interface ErrorShape {
  className: string;
  name: string;
  message: string;
  code: unknown;
  extendedCode: unknown;
  rawCode: unknown;
  keys: string[];
  cause:
    | { className: string; name: string; message: string; code: unknown; rawCode: unknown; keys: string[] }
    | undefined;
}

/** Describes one value. */
export function describeValue(value: unknown): ValueShape {
  if (value === null) return null;
  if (typeof value === "number") return ["number", Object.is(value, -0) ? "-0" : String(value)];
  if (typeof value === "bigint" || typeof value === "string") return [typeof value, String(value)];
  if (value instanceof ArrayBuffer) return ["ArrayBuffer", Buffer.from(value).toString("hex")];
  return ["other", Object.prototype.toString.call(value)];
}

function describeDescriptor(row: object, key: string): DescriptorShape | undefined {
  const descriptor = Object.getOwnPropertyDescriptor(row, key);
  if (descriptor === undefined) return undefined;
  const { value, writable, enumerable, configurable } = descriptor;
  return { value: describeValue(value), writable, enumerable, configurable };
}

function describeRow(row: ResultSet["rows"][number]): RowShape {
  const keys = Object.keys(row);
  return {
    length: row.length,
    values: Array.from({ length: row.length }, (_, i) => describeValue(row[i])),
    named: keys.map((key) => [key, describeValue(row[key])]),
    keys,
    ownNames: Object.getOwnPropertyNames(row),
    plainObject: Object.getPrototypeOf(row) === Object.prototype,
    firstIndex: describeDescriptor(row, "0"),
    firstName: keys[0] === undefined ? undefined : describeDescriptor(row, keys[0]),
  };
}

function describeError(error: unknown): ErrorShape {
  if (!(error instanceof Error)) throw new TypeError(`Expected an Error, got ${String(error)}`);
  const fields = error as Error & { code?: unknown; extendedCode?: unknown; rawCode?: unknown };
  const cause = error.cause as (Error & { code?: unknown; rawCode?: unknown }) | undefined;
  return {
    className: error.constructor.name,
    name: error.name,
    message: error.message,
    code: fields.code,
    extendedCode: fields.extendedCode,
    rawCode: fields.rawCode,
    keys: Object.keys(error),
    cause: cause === undefined ? undefined : {
      className: cause.constructor.name,
      name: cause.name,
      message: cause.message,
      code: cause.code,
      rawCode: cause.rawCode,
      keys: Object.keys(cause),
    },
  };
}

/** Runs `attempt` and describes what it returned or threw (synchronously or not). */
export async function outcomeOf(attempt: () => ResultSet | Promise<ResultSet>): Promise<Outcome> {
  let result: ResultSet;
  try {
    result = await attempt();
  } catch (error) {
    return { ok: false, error: describeError(error) };
  }
  return {
    ok: true,
    keys: Object.keys(result),
    columns: result.columns,
    columnTypes: result.columnTypes,
    rowsAffected: result.rowsAffected,
    lastInsertRowid: result.lastInsertRowid === undefined
      ? ["undefined", ""]
      : describeValue(result.lastInsertRowid),
    json: JSON.stringify(result),
    rows: result.rows.map(describeRow),
  };
}

/**
 * Asserts that `actual` and `expected` return the same result or throw the same error, and returns the
 * expected outcome. A mismatch is reported at the first differing row rather than as one huge diff.
 */
export async function assertSameResult(
  actual: () => ResultSet | Promise<ResultSet>,
  expected: () => ResultSet | Promise<ResultSet>,
  message = "",
): Promise<Outcome> {
  const [got, want] = [await outcomeOf(actual), await outcomeOf(expected)];
  if (got.ok && want.ok) {
    assert.equal(got.rows.length, want.rows.length, `${message}: row count`);
    got.rows.forEach((row, i) => assert.deepStrictEqual(row, want.rows[i], `${message}: row ${i}`));
  }
  assert.deepStrictEqual(got, want, message);
  return want;
}

/**
 * Creates the parity database at `path` and opens a read-only @libsql/client on it per intMode: the
 * expected side of every parity comparison. Close the clients when done.
 */
export async function makeParityDatabase(path: string): Promise<Map<IntMode, Client>> {
  const writer = createClient({ url: `file:${path}` });
  try {
    await writer.executeMultiple(PARITY_SCHEMA_SQL);
  } finally {
    writer.close();
  }
  const clients = new Map<IntMode, Client>();
  for (const intMode of INT_MODES) {
    clients.set(
      intMode,
      createClient({ url: `file:${encodeURIComponent(`file:${path}?mode=ro`)}`, intMode }),
    );
  }
  return clients;
}
