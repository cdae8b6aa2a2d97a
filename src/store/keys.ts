/**
 * The rules every store applies to keys, so that a key valid on one backend is valid on all of them, and
 * the one key order every listing follows.
 *
 * @module
 */

import { compareCodePoints } from "../bytes.ts";
import { TesseraError } from "../errors.ts";

/** Longest key, in UTF-8 bytes (S3's limit). */
export const MAX_KEY_BYTES = 1024;
/** Longest segment between slashes, in UTF-8 bytes (a file name's limit on common filesystems). */
export const MAX_SEGMENT_BYTES = 255;
/** Segments starting with this are the stores' own (temporary files). */
export const RESERVED_SEGMENT_PREFIX = ".tessera-";

const encoder = new TextEncoder();

/**
 * Throws `TesseraError` `INVALID_KEY` unless `key` is a valid object key: 1 to 1024 UTF-8 bytes; no
 * control characters or backslashes; segments separated by single `/`, none empty, `.` or `..`, none
 * longer than 255 bytes or starting with `.tessera-`.
 *
 * @example
 * ```ts
 * import { checkKey } from "./keys.ts";
 * checkKey("chunks/ab/abcdef"); // fine
 * try {
 *   checkKey("../etc/passwd");
 * } catch (error) {
 *   console.log((error as Error).message);
 * }
 * ```
 */
export function checkKey(key: string): void {
  const problem = keyProblem(key, false);
  if (problem) throw new TesseraError("INVALID_KEY", `Invalid key ${JSON.stringify(key)}: ${problem}`);
}

/** Like {@linkcode checkKey} for a listing prefix, which may be empty and may end with `/`. */
export function checkPrefix(prefix: string): void {
  const problem = keyProblem(prefix, true);
  if (problem) throw new TesseraError("INVALID_KEY", `Invalid prefix ${JSON.stringify(prefix)}: ${problem}`);
}

function keyProblem(key: string, isPrefix: boolean): string | undefined {
  if (typeof key !== "string") return "a key must be a string";
  if (key === "") return isPrefix ? undefined : "a key cannot be empty";
  if (encoder.encode(key).length > MAX_KEY_BYTES) return `a key is at most ${MAX_KEY_BYTES} UTF-8 bytes`;
  // deno-lint-ignore no-control-regex -- control characters are exactly what this rejects
  if (/[\u0000-\u001f\u007f]/.test(key)) return "a key cannot hold control characters such as NUL";
  if (key.includes("\\")) return "a key cannot hold a backslash";
  if (key.startsWith("/")) return "a key cannot start with '/' (keys are relative)";
  const segments = key.split("/");
  // A prefix may end in "/"; otherwise its last segment is the start of a name and is not checked whole.
  let partial: string | undefined;
  if (isPrefix) partial = segments.pop();
  if (partial !== undefined && encoder.encode(partial).length > MAX_SEGMENT_BYTES) {
    return `a key segment is at most ${MAX_SEGMENT_BYTES} UTF-8 bytes`;
  }
  for (const segment of segments) {
    if (segment === "") return "a key cannot hold an empty segment ('//' or a trailing '/')";
    if (segment === "." || segment === "..") return "a key cannot hold '.' or '..' segments";
    if (encoder.encode(segment).length > MAX_SEGMENT_BYTES) {
      return `a key segment is at most ${MAX_SEGMENT_BYTES} UTF-8 bytes`;
    }
    if (segment.startsWith(RESERVED_SEGMENT_PREFIX)) {
      return `segments starting with "${RESERVED_SEGMENT_PREFIX}" are reserved for the stores`;
    }
  }
  return undefined;
}

/** Orders keys as S3 lists them: by code point, which is UTF-8 byte order. */
export const compareKeys: (a: string, b: string) => number = compareCodePoints;
