/**
 * The field checks of `tessera serve`'s config (config.ts, objects_config.ts): each problem is a
 * `CONFIG_INVALID` naming the field, and a secret's value is never quoted.
 *
 * @module
 */

import { TesseraError } from "../errors.ts";
import { tokenProblem } from "./auth.ts";

export type Json = Record<string, unknown>;

export function invalid(where: string, message: string): never {
  throw new TesseraError("CONFIG_INVALID", `Cannot load the server config (${where}): ${message}`);
}

export function keys(obj: Json, allowed: readonly string[], path: string, where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      invalid(where, `${path}${key} is not a field; expected one of ${allowed.join(", ")}`);
    }
  }
}

export function object(value: unknown, path: string, where: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    invalid(where, `${path} is not an object`);
  }
  return value as Json;
}

export function number(value: unknown, path: string, where: string, min: number, fallback: number): number;
export function number(
  value: unknown,
  path: string,
  where: string,
  min: number,
  fallback?: undefined,
): number | undefined;
export function number(
  value: unknown,
  path: string,
  where: string,
  min: number,
  fallback?: number,
): number | undefined {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    invalid(where, `${path} is ${JSON.stringify(value)}; expected a whole number from ${min}`);
  }
  return value;
}

export function choice<T extends string>(
  value: unknown,
  path: string,
  where: string,
  options: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (!options.includes(value as T)) {
    invalid(where, `${path} is ${JSON.stringify(value)}; expected ${options.join(" or ")}`);
  }
  return value as T;
}

/**
 * Reads a configured secret: the text itself, or `env:NAME` for the environment variable NAME. Returns the
 * secret, or a phrase saying what is wrong with it ("names the environment variable X, which is not set")
 * that never quotes the secret.
 *
 * @example
 * ```ts
 * import { readSecret } from "./config.ts";
 * console.log(readSecret("env:APP_TOKEN", { APP_TOKEN: "s3cret" })); // { secret: "s3cret" }
 * ```
 */
export function readSecret(
  value: string,
  env: Record<string, string | undefined>,
): { secret: string } | { problem: string } {
  if (!value.startsWith("env:")) {
    const problem = tokenProblem(value);
    return problem === undefined ? { secret: value } : { problem };
  }
  const name = value.slice(4);
  const found = env[name];
  if (found === undefined || found === "") {
    return { problem: `names the environment variable ${name}, which is not set or empty` };
  }
  const problem = tokenProblem(found);
  if (problem !== undefined) {
    return { problem: `names the environment variable ${name}, whose value ${problem}` };
  }
  return { secret: found };
}

// A secret's value is never shown: only where it was asked for.
export function secret(
  value: unknown,
  path: string,
  where: string,
  env: Record<string, string | undefined>,
): string {
  if (typeof value !== "string") invalid(where, `${path} is not a string`);
  const read = readSecret(value, env);
  if ("problem" in read) invalid(where, `${path} ${read.problem}`);
  return read.secret;
}

export function stores(value: unknown, path: string, where: string): string[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.map((v, i) => {
    if (typeof v !== "string" || v === "") invalid(where, `${path}[${i}] is not a store URL`);
    return v;
  });
}
