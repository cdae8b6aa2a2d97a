/**
 * Listing over a sorted sequence of keys, shared by stores that hold every key at hand.
 *
 * @module
 */

import type { BlobInfo, ListItem } from "./types.ts";

/** Rolls keys up to `/`-delimited prefixes when asked; input and output are in key order. */
export async function* rollUp(
  objects: AsyncIterable<BlobInfo> | Iterable<BlobInfo>,
  prefix: string,
  delimiter: "/" | undefined,
): AsyncGenerator<ListItem> {
  let lastPrefix: string | undefined;
  for await (const info of objects) {
    if (delimiter) {
      const at = info.key.indexOf(delimiter, prefix.length);
      if (at !== -1) {
        const common = info.key.slice(0, at + 1);
        if (common !== lastPrefix) yield { type: "prefix", prefix: common };
        lastPrefix = common;
        continue;
      }
    }
    yield { type: "object", ...info };
  }
}
