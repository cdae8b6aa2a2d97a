/**
 * Byte ranges: checking them, clamping them to an object, asking a server for them, and reading what a
 * server sent back (which may be the whole object, when it ignores `Range`).
 *
 * @module
 */

import type { HttpResponse } from "./http.ts";

/** `length` bytes from `offset`, or to the end when `length` is absent. */
export interface ByteRange {
  offset: number;
  length?: number | undefined;
}

/** Throws `RangeError` unless offset and length are non-negative safe integers. */
export function checkRange(range: ByteRange | undefined): void {
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
export function rangeBounds(range: ByteRange | undefined, size: number): [number, number] {
  if (!range) return [0, size];
  const start = Math.min(range.offset, size);
  const end = range.length === undefined ? size : Math.min(size, range.offset + range.length);
  return [start, Math.max(start, end)];
}

/** The `Range` header for a non-empty range. */
export function rangeHeader(range: ByteRange): string {
  return range.length === undefined
    ? `bytes=${range.offset}-`
    : `bytes=${range.offset}-${range.offset + range.length - 1}`;
}

/** The bytes of a 200 or 206 response to a (possibly ranged) GET, and the whole object's size. */
export function rangedBody(
  response: HttpResponse,
  range: ByteRange | undefined,
): { body: Uint8Array; size: number } {
  const total = response.headers.get("content-range")?.match(/\/(\d+)$/)?.[1];
  if (response.status === 206 && total !== undefined) return { body: response.body, size: Number(total) };
  // The server ignored the Range header and sent the whole object: cut the range out here.
  const [start, end] = rangeBounds(range, response.body.length);
  return { body: response.body.subarray(start, end), size: response.body.length };
}

/** The date in a `Last-Modified` header, if it holds one. */
export function parseHttpDate(value: string | null): Date | undefined {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}
