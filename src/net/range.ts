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

// Larger positions than any object has stand for "past the end" (and keep `end - start + 1` exact).
const FAR = 2 ** 52;

/** A range asked for: `offset`/`length` (`bytes=A-B`, `bytes=A-`) or the last `suffix` bytes (`bytes=-N`). */
export type AskedRange = { offset: number; length: number | undefined } | { suffix: number };

/**
 * The range of a `Range` header, or `undefined` when there is none or it is not one range of bytes (a
 * server may then answer with the whole object, as RFC 9110 allows). The unit is case-insensitive, empty
 * list elements (`bytes=1-2,`) are skipped as RFC 9110's lists allow, and positions past 2^52 read as 2^52,
 * which every object ends before. Reads what `rangeHeader` writes for `HttpStore` and S3.
 *
 * @example Parse the three forms
 * ```ts
 * import { parseRangeHeader } from "./range.ts";
 * console.log(parseRangeHeader("bytes=10-19"), parseRangeHeader("bytes=10-"), parseRangeHeader("bytes=-5"));
 * // { offset: 10, length: 10 } { offset: 10, length: undefined } { suffix: 5 }
 * ```
 */
export function parseRangeHeader(value: string | null): AskedRange | undefined {
  const set = /^bytes=(.*)$/i.exec(value?.trim() ?? "")?.[1];
  if (set === undefined) return undefined;
  const specs = set.split(",").map((spec) => spec.trim()).filter((spec) => spec !== "");
  const match = specs.length === 1 ? /^(\d*)-(\d*)$/.exec(specs[0]!) : null;
  if (!match) return undefined;
  const [, first = "", last = ""] = match;
  if (first === "") return last === "" ? undefined : { suffix: position(BigInt(last)) };
  const start = BigInt(first);
  const end = last === "" ? undefined : BigInt(last);
  if (end !== undefined && end < start) return undefined;
  const offset = position(start);
  return { offset, length: end === undefined ? undefined : position(end) - offset + 1 };
}

function position(value: bigint): number {
  return value > BigInt(FAR) ? FAR : Number(value);
}

/**
 * The `[start, end)` bytes a range asks of an object of `size` bytes, cut to the object, or `undefined`
 * when it asks for none of them (a 416).
 */
export function askedBounds(asked: AskedRange, size: number): [number, number] | undefined {
  if ("suffix" in asked) {
    return asked.suffix === 0 || size === 0 ? undefined : [Math.max(0, size - asked.suffix), size];
  }
  if (asked.offset >= size) return undefined;
  return [asked.offset, asked.length === undefined ? size : Math.min(size, asked.offset + asked.length)];
}
