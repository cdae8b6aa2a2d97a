/**
 * Cutting SQL text into statements, as `tessera query` and `tessera shell` run them one at a time.
 *
 * @module
 */

/** Statements cut from SQL text, and what follows the last `;`. */
export interface SplitSql {
  /** Complete statements, trimmed, without their `;`; comment-only statements are dropped. */
  statements: string[];
  /** Text after the last complete statement that holds SQL or an unclosed quote or comment; else "". */
  rest: string;
}

/**
 * Cuts `text` at every `;` outside quotes (`'…'`, `"…"`, `` `…` ``, `[…]`) and comments (`-- …`, `/* … *\/`).
 * `CREATE TRIGGER` bodies are not recognised: a replica refuses them anyway.
 *
 * @example
 * ```ts
 * import { splitStatements } from "./statements.ts";
 * console.log(splitStatements("SELECT ';'; -- done\nSELECT 2"));
 * // { statements: ["SELECT ';'"], rest: "-- done\nSELECT 2" }
 * ```
 */
export function splitStatements(text: string): SplitSql {
  const statements: string[] = [];
  let start = 0;
  let hasCode = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    const next = text[i + 1];
    if (c === "-" && next === "-") {
      const end = text.indexOf("\n", i + 2);
      if (end < 0) return { statements, rest: restOf(text.slice(start), hasCode) };
      i = end + 1;
    } else if (c === "/" && next === "*") {
      const end = text.indexOf("*/", i + 2);
      if (end < 0) return { statements, rest: text.slice(start).trim() };
      i = end + 2;
    } else if (c === "'" || c === '"' || c === "`" || c === "[") {
      const close = c === "[" ? "]" : c;
      hasCode = true;
      let j = i + 1;
      for (;;) {
        j = text.indexOf(close, j);
        if (j < 0) return { statements, rest: text.slice(start).trim() };
        // A doubled quote stands for itself inside the quotes; brackets have no escape.
        if (close !== "]" && text[j + 1] === close) j += 2;
        else break;
      }
      i = j + 1;
    } else if (c === ";") {
      if (hasCode) statements.push(text.slice(start, i).trim());
      start = i + 1;
      hasCode = false;
      i += 1;
    } else {
      if (!/\s/.test(c)) hasCode = true;
      i += 1;
    }
  }
  return { statements, rest: restOf(text.slice(start), hasCode) };
}

function restOf(text: string, hasCode: boolean): string {
  return hasCode ? text.trim() : "";
}
