/**
 * Range arithmetic shared by the stores that cut ranges themselves.
 *
 * @module
 */

import type { Range } from "./types.ts";

/** Throws `RangeError` unless offset and length are non-negative safe integers. */
export function checkRange(range: Range | undefined): void {
  if (!range) return;
  const ok = Number.isSafeInteger(range.offset) && range.offset >= 0 &&
    (range.length === undefined || (Number.isSafeInteger(range.length) && range.length >= 0));
  if (!ok) {
    throw new RangeError(
      `Cannot read range offset=${range.offset} length=${range.length}: expected non-negative integers`,
    );
  }
}

/** The `[start, end)` bytes a range selects of an object of `size` bytes, clamped to the object. */
export function rangeBounds(range: Range | undefined, size: number): [number, number] {
  if (!range) return [0, size];
  const start = Math.min(range.offset, size);
  const end = range.length === undefined ? size : Math.min(size, range.offset + range.length);
  return [start, Math.max(start, end)];
}
