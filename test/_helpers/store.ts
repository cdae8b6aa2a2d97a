/**
 * Test data and reads the store tests share: recognisable bytes, an object that must exist, a whole listing.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { BlobStore, GetResult, ListItem } from "../../src/store/types.ts";

/** Bytes that differ for every seed, so a test can tell which write won. */
export function pattern(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

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
