/**
 * The `PRAGMA tessera_snapshot_*` statements a replica answers itself, before SQLite sees them.
 *
 * @module
 */

/** The pragmas, by the name after `tessera_snapshot_`. */
export const TESSERA_PRAGMAS = [
  "ctime",
  "updated",
  "sequence",
  "lag",
  "refresh",
  "async_reload",
  "auto_refresh",
] as const;

/** One of {@linkcode TESSERA_PRAGMAS}. */
export type TesseraPragmaName = typeof TESSERA_PRAGMAS[number];

/** A parsed `PRAGMA tessera_snapshot_NAME`, `...(ARG)` or `... = ARG`. */
export interface TesseraPragma {
  /** The full pragma name as written, lower-cased: the result column's name. */
  column: string;
  /** The name after `tessera_snapshot_`, or `undefined` when it is not one Tessera knows. */
  name: TesseraPragmaName | undefined;
  /** The argument, when one was given. */
  argument: string | undefined;
}

const PRAGMA = new RegExp(
  String.raw`^\s*PRAGMA\s+(?:(?:main|"main"|\[main\]|` + "`main`" + String.raw`)\s*\.\s*)?` +
    String.raw`(["\[` + "`" + String.raw`]?)(tessera_snapshot_[A-Za-z0-9_]*)["\]` + "`" + String.raw`]?\s*` +
    String.raw`(?:\(\s*([^()]*?)\s*\)|=\s*([^;\s]+))?\s*;?\s*$`,
  "i",
);

/**
 * Recognizes a Tessera pragma. Anything else (including other pragmas) is `undefined` and goes to SQLite.
 *
 * @example
 * ```ts
 * import { parseTesseraPragma } from "./pragmas.ts";
 * console.log(parseTesseraPragma("PRAGMA tessera_snapshot_refresh(1);")?.argument); // "1"
 * console.log(parseTesseraPragma("SELECT 1")); // undefined
 * ```
 */
export function parseTesseraPragma(sql: string): TesseraPragma | undefined {
  if (sql.length > 200) return undefined;
  const match = PRAGMA.exec(sql);
  if (!match) return undefined;
  const column = match[2]!.toLowerCase();
  const short = column.slice("tessera_snapshot_".length);
  const name = (TESSERA_PRAGMAS as readonly string[]).includes(short)
    ? short as TesseraPragmaName
    : undefined;
  let argument = match[3] ?? match[4];
  if (argument !== undefined) argument = argument.replace(/^(['"])(.*)\1$/, "$2");
  return { column, name, argument };
}
