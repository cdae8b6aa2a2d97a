/**
 * Entity tags as a server reads them from conditional requests (`If-None-Match`, `If-Range`).
 *
 * @module
 */

/**
 * The entity tags of an `If-None-Match` header, weak ones as their strong form (it compares weakly).
 *
 * @example Parse a list
 * ```ts
 * import { parseEntityTags } from "./etag.ts";
 * console.log(parseEntityTags('"a", W/"b"')); // [ '"a"', '"b"' ]
 * ```
 */
export function parseEntityTags(value: string | null): string[] {
  return [...(value ?? "").matchAll(/\*|(?:W\/)?"[^"]*"/g)].map(([tag]) => tag.replace(/^W\//, ""));
}

/** A strong entity tag as a store gave it (quoted, or a bare token to quote), else `undefined`. */
export function strongTag(etag: string): string | undefined {
  if (/^"[\x21\x23-\x7e]*"$/.test(etag)) return etag;
  if (/^[\x21\x23-\x7e]+$/.test(etag) && !etag.startsWith("W/")) return `"${etag}"`;
  return undefined;
}

/** True when one of `tags` (from {@linkcode parseEntityTags}) is `*` or `etag`. */
export function tagsMatch(tags: readonly string[], etag: string): boolean {
  return tags.some((tag) => tag === "*" || tag === etag);
}
