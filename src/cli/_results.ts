/**
 * How `tessera query` and `tessera shell` print results: an aligned table for people, one JSON object per
 * statement for programs.
 *
 * @module
 */

import type { ResultSet, Value } from "@libsql/core/api";
import { LibsqlError } from "@libsql/core/api";
import { toHex } from "../bytes.ts";
import { blobBytes } from "../replica/result_json.ts";

/** Blob bytes shown in a table before the rest is cut off. */
const BLOB_SHOWN = 16;

/**
 * `result` as an aligned table: a header line, a rule, one line per row, and a row count. NULL prints as
 * `NULL`, a blob as `x'hex'` (its first 16 bytes and its length when longer), integers exactly, a REAL with
 * a fraction or exponent (`1.0`), and line breaks, tabs and other control characters in text escaped. Number
 * columns are right-aligned. A statement without columns prints nothing.
 *
 * @example
 * ```ts
 * import { formatTable } from "./_results.ts";
 * const rows = [Object.assign([1n, "one"], { k: 1n, v: "one" })];
 * console.log(formatTable({ columns: ["k", "v"], rows } as never));
 * // k  v
 * // -  ---
 * // 1  one
 * // (1 row)
 * ```
 */
export function formatTable(result: Pick<ResultSet, "columns" | "rows">): string {
  const { columns, rows } = result;
  if (columns.length === 0) return "";
  const cells = rows.map((row) => columns.map((_, i) => cellText(row[i] as Value)));
  const numeric = columns.map((_, i) =>
    rows.some((row) => isNumber(row[i])) && rows.every((row) => row[i] === null || isNumber(row[i]))
  );
  const widths = columns.map((name, i) =>
    Math.max(width(escapeText(name)), ...cells.map((line) => width(line[i] as string)))
  );
  const line = (texts: string[]) =>
    texts.map((text, i) => {
      const pad = " ".repeat((widths[i] as number) - width(text));
      return numeric[i] ? pad + text : text + pad;
    }).join("  ").trimEnd() + "\n";
  let out = line(columns.map(escapeText));
  out += line(widths.map((w) => "-".repeat(w)));
  for (const texts of cells) out += line(texts);
  return out + `(${rows.length} ${rows.length === 1 ? "row" : "rows"})\n`;
}

/**
 * The code and message of an error SQLite reported for a statement (a `LibsqlError`: `SQLITE_ERROR`,
 * `SQLITE_READONLY`, …), or `undefined` for any other error.
 */
export function sqlError(error: unknown): { code: string; message: string } | undefined {
  // By name too: the native engine's @libsql/client may load its own copy of the class.
  const named = (error as { name?: unknown } | null)?.name;
  if (!(error instanceof LibsqlError) && named !== "LibsqlError" && named !== "LibsqlBatchError") {
    return undefined;
  }
  const { code, message } = error as { code: unknown; message: string };
  return { code: typeof code === "string" ? code : "SQLITE_ERROR", message };
}

function cellText(value: Value | undefined): string {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number") return realText(value);
  const bytes = blobBytes(value);
  if (bytes) {
    const shown = toHex(bytes.subarray(0, BLOB_SHOWN));
    return bytes.length <= BLOB_SHOWN ? `x'${shown}'` : `x'${shown}…' (${bytes.length} bytes)`;
  }
  return escapeText(String(value));
}

// With integers as bigints (the CLI's default), a number is always a REAL: show it as SQLite does.
function realText(value: number): string {
  const text = String(value);
  return /^-?\d+$/.test(text) ? `${text}.0` : text;
}

function isNumber(value: unknown): boolean {
  return typeof value === "number" || typeof value === "bigint";
}

// Control characters would break the table's lines and columns.
function escapeText(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\r") return "\\r";
    if (c === "\t") return "\\t";
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
}

function width(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}
