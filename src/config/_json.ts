/**
 * JSON parsing that reports where the text is wrong the same way on every runtime: V8 names a position,
 * JavaScriptCore (Bun) does not, so on a failure a small scanner finds the first error itself.
 *
 * @module
 */

import { errorMessage } from "../errors.ts";

/** Where and why a text is not JSON; `line` and `column` count from 1. */
export interface JsonSyntaxProblem {
  offset: number;
  line: number;
  column: number;
  problem: string;
}

/** Parses `text` as JSON, or returns where it first goes wrong. A leading byte order mark is ignored. */
export function parseJson(text: string): { ok: true; value: unknown } | ({ ok: false } & JsonSyntaxProblem) {
  const body = text.startsWith("\uFEFF") ? text.slice(1) : text;
  try {
    return { ok: true, value: JSON.parse(body) };
  } catch (error) {
    const found = findJsonError(body);
    const at = found?.offset ?? body.length;
    const problem = found?.problem ?? errorMessage(error);
    return { ok: false, ...lineColumn(body, at), offset: at, problem };
  }
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const lastBreak = before.lastIndexOf("\n");
  return { line: before.split("\n").length, column: offset - lastBreak };
}

class Fail {
  constructor(readonly offset: number, readonly problem: string) {}
}

/** The first syntax error in `text`, or undefined when it is JSON (nesting deeper than 512 counts as one). */
export function findJsonError(text: string): { offset: number; problem: string } | undefined {
  let i = 0;
  const fail = (problem: string, at = i): never => {
    throw new Fail(at, problem);
  };
  const describe = (at: number): string => {
    const c = text[at];
    if (c === undefined) return "the end of the text";
    if (c === "/" && (text[at + 1] === "/" || text[at + 1] === "*")) return "a comment (JSON has none)";
    return c < " " ? `control character U+${c.charCodeAt(0).toString(16).padStart(4, "0")}` : `'${c}'`;
  };
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i] as string)) i++;
  };
  const literal = (word: string) => {
    for (const c of word) {
      if (text[i] !== c) fail(`expected '${word}' but found ${describe(i)}`);
      i++;
    }
  };
  const string = () => {
    i++;
    for (;;) {
      const c = text[i];
      if (c === undefined) fail("a string is not closed");
      if (c === '"') break;
      if ((c as string) < " ") fail(`${describe(i)} inside a string; escape it`);
      if (c === "\\") {
        const e = text[i + 1];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail("'\\u' needs four hex digits");
          i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) fail(`invalid escape '\\${e ?? ""}'`);
        i += 2;
        continue;
      }
      i++;
    }
    i++;
  };
  const number = () => {
    const match = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(text.slice(i));
    if (!match || match[0] === "-") fail(`expected a value but found ${describe(i)}`);
    i += (match as RegExpExecArray)[0].length;
  };
  const value = (depth: number): void => {
    if (depth > 512) fail("nesting is too deep");
    space();
    const c = text[i];
    if (c === "{") return container("}", depth, true);
    if (c === "[") return container("]", depth, false);
    if (c === '"') return string();
    if (c === "t") return literal("true");
    if (c === "f") return literal("false");
    if (c === "n") return literal("null");
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return number();
    fail(`expected a value but found ${describe(i)}`);
  };
  const container = (close: string, depth: number, object: boolean) => {
    i++;
    space();
    if (text[i] === close) {
      i++;
      return;
    }
    for (;;) {
      if (object) {
        space();
        if (text[i] !== '"') {
          if (text[i] === close) fail("a trailing comma is not allowed");
          fail(`expected a property name in double quotes but found ${describe(i)}`);
        }
        string();
        space();
        if (text[i] !== ":") fail(`expected ':' after a property name but found ${describe(i)}`);
        i++;
      }
      space();
      if (!object && text[i] === close) fail("a trailing comma is not allowed");
      value(depth + 1);
      space();
      if (text[i] === ",") {
        i++;
        continue;
      }
      if (text[i] === close) {
        i++;
        return;
      }
      fail(`expected ',' or '${close}' but found ${describe(i)}`);
    }
  };
  try {
    value(0);
    space();
    if (i < text.length) fail(`unexpected ${describe(i)} after the JSON value`);
    return undefined;
  } catch (error) {
    if (error instanceof Fail) return { offset: error.offset, problem: error.problem };
    throw error;
  }
}
