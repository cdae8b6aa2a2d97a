/**
 * Test data and reads the store tests share: recognisable bytes, an object that must exist, a whole listing.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { BlobStore, GetResult, ListItem } from "../../src/store/types.ts";

export { pattern } from "./pattern.ts";

/** Reads an object that must exist and returns its bytes. */
export async function mustGet(store: BlobStore, key: string): Promise<Uint8Array> {
  const got = await store.get(key);
  assert.equal(got.status, "ok", `expected "${key}" to exist in ${store.description}`);
  return (got as GetResult & { status: "ok" }).body;
}

/** Every item of a listing. */
export async function listAll(store: BlobStore, prefix: string, delimiter?: "/"): Promise<ListItem[]> {
  const items: ListItem[] = [];
  for await (const item of store.list(prefix, delimiter ? { delimiter } : {})) items.push(item);
  return items;
}
