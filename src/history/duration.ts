/**
 * Durations as people type them on a command line: `30m`, `12h`, `7d`, `2w`.
 *
 * @module
 */

const UNITS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 60 * 60_000,
  d: 24 * 60 * 60_000,
  w: 7 * 24 * 60 * 60_000,
};

const DURATION = /^(\d+(?:\.\d+)?)(s|m|h|d|w)$/;

/**
 * The milliseconds a duration such as `90s`, `30m`, `12h`, `7d` or `2w` stands for (one number, then one
 * unit: s, m, h, d or w). Throws `RangeError` naming the text otherwise.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./duration.ts";
 * console.log(parseDuration("7d")); // 604800000
 * console.log(parseDuration("1.5h")); // 5400000
 * ```
 */
export function parseDuration(text: string): number {
  const match = DURATION.exec(String(text).trim());
  if (!match) {
    throw new RangeError(
      `Invalid duration ${
        JSON.stringify(text)
      }: expected a number and a unit, such as 90s, 30m, 12h, 7d or 2w`,
    );
  }
  const ms = Math.round(Number(match[1]) * (UNITS[match[2] as string] as number));
  if (!Number.isSafeInteger(ms)) throw new RangeError(`Invalid duration ${JSON.stringify(text)}: too long`);
  return ms;
}

/**
 * A duration in the largest unit that states it exactly, as {@linkcode parseDuration} reads it back.
 *
 * @example
 * ```ts
 * import { formatDuration } from "./duration.ts";
 * console.log(formatDuration(6 * 60 * 60_000)); // "6h"
 * console.log(formatDuration(90_000)); // "90s"
 * ```
 */
export function formatDuration(ms: number): string {
  for (const unit of ["w", "d", "h", "m", "s"]) {
    const size = UNITS[unit] as number;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms / 1000}s`;
}
