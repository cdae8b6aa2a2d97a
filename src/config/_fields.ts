/**
 * Reading fields of a parsed config: each check names the field path, shows the value (never a secret's)
 * and the expected shape, and says where the config came from.
 *
 * @module
 */

import { isAbsolute, resolve } from "node:path";
import { TesseraError } from "../errors.ts";

/** A JSON object as parsed. */
export type Json = Record<string, unknown>;

/** Names that hold secrets: their values never appear in a message. */
const SECRET_NAME = /secret|password|passwd|token|credential|access_?key|private_?key|api_?key|auth/i;

/** Where a config came from and how to resolve its relative paths. */
export class ConfigContext {
  /** For messages: `file "/etc/tessera.json" (from -c)`, `TESSERA_CONFIG inline JSON`, `--store`. */
  readonly source: string;
  /** Relative paths resolve against this directory. */
  readonly cwd: string;

  constructor(source: string, cwd: string) {
    this.source = source;
    this.cwd = cwd;
  }

  /** Throws CONFIG_INVALID for a problem with the config as a whole. */
  fail(problem: string, cause?: unknown): never {
    const options = cause === undefined ? {} : { cause };
    throw new TesseraError("CONFIG_INVALID", `Cannot load config from ${this.source}: ${problem}`, options);
  }

  /** Throws CONFIG_INVALID for the field at `path` holding `value` instead of `expected`. */
  invalid(path: string, value: unknown, expected: string): never {
    const shown = value === undefined ? "is missing" : `is ${showValue(path, value)}`;
    this.fail(`${path} ${shown}; expected ${expected}`);
  }

  /** Resolves a path in the config against the working directory. */
  path(path: string): string {
    return isAbsolute(path) ? resolve(path) : resolve(this.cwd, path);
  }
}

/** The path of `key` inside the object at `path`. */
export function child(path: string, key: string): string {
  const name = /^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key);
  return path === "" ? name : `${path}.${name}`;
}

/** True when a field of this name (or under one) holds a secret. */
export function isSecretPath(path: string): boolean {
  return SECRET_NAME.test(path);
}

/** A value as shown in a message: JSON, shortened, URLs without credentials, secrets hidden. */
export function showValue(path: string, value: unknown): string {
  if (isSecretPath(path)) return "(a value that is not shown)";
  let text: string;
  try {
    text = JSON.stringify(value, (key, v) => {
      if (key !== "" && isSecretPath(key)) return "(not shown)";
      return typeof v === "string" ? redactUrl(v) : v;
    }) ?? String(value);
  } catch {
    text = String(value);
  }
  if (text.length > 80) text = `${text.slice(0, 77)}...`;
  if (Array.isArray(value)) return `an array ${text}`;
  return value !== null && typeof value === "object" ? `an object ${text}` : text;
}

/**
 * Hides the user and password of a URL (everything up to its last `@`, since a secret may hold a `/`),
 * and its query, which may carry a signature or token.
 */
export function redactUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/).*@/is, "$1***@").replace(/\?.*$/s, "?…");
}

/** The object at `path`, or a CONFIG_INVALID error. */
export function objectValue(cx: ConfigContext, value: unknown, path: string, expected: string): Json {
  if (value === null || typeof value !== "object" || Array.isArray(value)) cx.invalid(path, value, expected);
  return value as Json;
}

/** The array at `path`, or a CONFIG_INVALID error. */
export function arrayValue(cx: ConfigContext, value: unknown, path: string, expected: string): unknown[] {
  if (!Array.isArray(value)) cx.invalid(path, value, expected);
  return value as unknown[];
}

/**
 * Rejects keys of `obj` outside `known` and `ignored` (accepted and unused), suggesting a near miss from
 * `known` and `alsoSuggest`, or the hint given for that key.
 */
export function checkKeys(
  cx: ConfigContext,
  obj: Json,
  path: string,
  known: readonly string[],
  options: { ignored?: readonly string[]; hints?: Record<string, string>; alsoSuggest?: readonly string[] } =
    {},
): void {
  const ignored = options.ignored ?? [];
  const unknown = Object.keys(obj).filter((key) => !known.includes(key) && !ignored.includes(key));
  if (unknown.length === 0) return;
  const described = unknown.map((key) => {
    const given = options.hints && Object.hasOwn(options.hints, key) ? options.hints[key] : undefined;
    const hint = given ?? suggest(key, [...known, ...(options.alsoSuggest ?? [])]);
    return `${child(path, key)} is not a known key${hint ? ` (did you mean ${hint}?)` : ""}`;
  });
  const where = path === "" ? "at the top level" : `in ${path}`;
  cx.fail(`${described.join("; ")}; expected ${where}: ${known.join(", ")}`);
}

/** The closest of `candidates` to `key`, quoted, when it is close enough to be a typo. */
export function suggest(key: string, candidates: readonly string[]): string | undefined {
  const plain = (s: string) => s.toLowerCase().replace(/[_-]/g, "");
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = distance(plain(key), plain(candidate));
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  const limit = Math.max(1, Math.floor(key.length / 3));
  return best !== undefined && bestDistance <= limit ? `"${best}"` : undefined;
}

/** Edit distance counting a swap of neighbours as one edit (optimal string alignment). */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) (d[0] as number[])[j] = j;
  const at = (i: number, j: number) => (d[i] as number[])[j] as number;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, at(i - 2, j - 2) + 1);
      }
      (d[i] as number[])[j] = best;
    }
  }
  return at(a.length, b.length);
}

/** A non-empty string field; `undefined` when optional and absent. */
export function stringField(cx: ConfigContext, obj: Json, key: string, path: string, required: true): string;
export function stringField(
  cx: ConfigContext,
  obj: Json,
  key: string,
  path: string,
  required: false,
): string | undefined;
export function stringField(cx: ConfigContext, obj: Json, key: string, path: string, required: boolean) {
  const value = obj[key];
  if (value === undefined && !required) return undefined;
  if (typeof value !== "string" || value.trim() === "") {
    cx.invalid(child(path, key), value, "a non-empty string");
  }
  return value;
}

/** A boolean field; `undefined` when absent. */
export function booleanField(cx: ConfigContext, obj: Json, key: string, path: string): boolean | undefined {
  const value = obj[key];
  if (value === undefined) return undefined;
  if (typeof value !== "boolean") cx.invalid(child(path, key), value, "true or false");
  return value;
}

/** A whole-number field from `min` to `max`; `fallback` when absent (missing is an error without one). */
export function integerField(
  cx: ConfigContext,
  obj: Json,
  key: string,
  path: string,
  range: { min: number; max: number; fallback?: number },
): number {
  const value = obj[key];
  if (value === undefined && range.fallback !== undefined) return range.fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < range.min || value > range.max) {
    cx.invalid(child(path, key), value, `a whole number from ${range.min} to ${range.max}`);
  }
  return value;
}
