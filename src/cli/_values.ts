/**
 * Option values the commands read the same way: durations and whole numbers, each refused with a
 * `UsageError` that names the option.
 *
 * @module
 */

import { errorMessage } from "../errors.ts";
import { parseDuration } from "../history/duration.ts";
import { UsageError } from "./_io.ts";

/**
 * The milliseconds `text`, the value of `option` (such as `--keep-within`), stands for: `90s`, `30m`,
 * `12h`, `7d`, `2w` (see `parseDuration`). `undefined` when the option was not given; a `UsageError`
 * naming the option when `text` is not a duration.
 *
 * @example
 * ```ts
 * import { durationOption } from "./_values.ts";
 * console.log(durationOption("--grace", "2h")); // 7200000
 * console.log(durationOption("--grace", undefined)); // undefined
 * ```
 */
export function durationOption(option: string, text: string): number;
export function durationOption(option: string, text: string | undefined): number | undefined;
export function durationOption(option: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseDuration(text);
  } catch (error) {
    throw new UsageError(`${option}: ${errorMessage(error)}`);
  }
}

/** Options of {@linkcode wholeNumberOption}. */
export interface WholeNumberOptions {
  /** The value when the option is absent. */
  fallback: number;
  /** The smallest value accepted. @default {0} */
  min?: number;
}

/**
 * The whole number the option `--<option>` of `values` holds, or `fallback` when it is absent; a
 * `UsageError` when it is not a whole number of at least `min`.
 *
 * @example
 * ```ts
 * import { wholeNumberOption } from "./_values.ts";
 * console.log(wholeNumberOption({ "poll-ms": "250" }, "poll-ms", { fallback: 500, min: 10 })); // 250
 * console.log(wholeNumberOption({}, "poll-ms", { fallback: 500, min: 10 })); // 500
 * ```
 */
export function wholeNumberOption(
  values: Record<string, unknown>,
  option: string,
  { fallback, min = 0 }: WholeNumberOptions,
): number {
  const raw = values[option];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${option} takes a whole number ≥ ${min}`);
  return n;
}
