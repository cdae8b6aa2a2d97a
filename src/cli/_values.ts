/**
 * Option values the commands read the same way: durations and whole numbers, each refused with a
 * `UsageError` that names the option.
 *
 * @module
 */

import { errorMessage } from "../errors.ts";
import { formatBytes } from "./_store_bench.ts";
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

/**
 * Bytes from `1536`, `64k`, `8m`, `1.5g` (KiB, MiB, GiB; a trailing `b` or `ib` is allowed); a `UsageError`
 * naming `option` for anything else, for less than `min`, or for more than `max`.
 *
 * @example
 * ```ts
 * import { sizeOption } from "./_values.ts";
 * console.log(sizeOption("--memory", "64m")); // 67108864
 * ```
 */
export function sizeOption(
  option: string,
  text: string,
  max: number = Number.MAX_SAFE_INTEGER,
  min = 1,
): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?$/i.exec(text.trim());
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(match?.[2] ?? "").toLowerCase()] ?? 1;
  const bytes = match ? Math.round(Number(match[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < min) {
    throw new UsageError(
      `${option}: "${text}" is not a size: give bytes, or a number with k, m or g (KiB, MiB, GiB), such as 64m`,
    );
  }
  if (bytes > max) throw new UsageError(`${option}: "${text}" is more than ${formatBytes(max)}`);
  return bytes;
}
