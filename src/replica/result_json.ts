/**
 * A result set as JSON for programs: `tessera query --json` and the server's JSON API write the same
 * shape, with integers exact, blobs in base64 and every column kept.
 *
 * @module
 */

import type { ResultSet } from "@libsql/core/api";
import { toBase64 } from "../bytes.ts";

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * `result` as one line of JSON: `{"columns": [...], "rows": [{column: value}], "sequence": N}`. Integers are
 * numbers while they are safe integers (±(2^53 − 1)) and decimal strings beyond, so none is ever rounded;
 * blobs are standard base64; REAL infinities are the strings `"Infinity"` and `"-Infinity"`. A column name
 * that repeats an earlier one gets `:2`, `:3`, … so no value is lost; `columns` lists the keys used.
 *
 * @example
 * ```ts
 * import { resultJson } from "./result_json.ts";
 * const rows = [Object.assign([2n ** 60n], { n: 2n ** 60n })];
 * console.log(resultJson({ columns: ["n"], rows } as never, 3));
 * // {"columns":["n"],"rows":[{"n":"1152921504606846976"}],"sequence":3}
 * ```
 */
export function resultJson(result: Pick<ResultSet, "columns" | "rows">, sequence: number): string {
  const keys = uniqueKeys(result.columns);
  const rows = result.rows.map((row) => Object.fromEntries(keys.map((key, i) => [key, jsonValue(row[i])])));
  return JSON.stringify({ columns: keys, rows, sequence }) + "\n";
}

/** A value as JSON shows it in {@linkcode resultJson}. */
export function jsonValue(value: unknown): unknown {
  if (typeof value === "bigint") {
    return value >= -MAX_SAFE && value <= MAX_SAFE ? Number(value) : value.toString();
  }
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  const bytes = blobBytes(value);
  if (bytes) return toBase64(bytes);
  return value ?? null;
}

/** The bytes of a blob value (an `ArrayBuffer` from a replica, a `Uint8Array` from elsewhere). */
export function blobBytes(value: unknown): Uint8Array | undefined {
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (value instanceof Uint8Array) return value;
  return undefined;
}

/** Column names made unique: a repeat gets `:2`, `:3`, … */
export function uniqueKeys(columns: readonly string[]): string[] {
  const seen = new Set<string>();
  return columns.map((column) => {
    let key = column;
    for (let n = 2; seen.has(key); n++) key = `${column}:${n}`;
    seen.add(key);
    return key;
  });
}
