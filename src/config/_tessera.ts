/**
 * Tessera's own config shape: `targets`, `read_only`, `cache`, `read_only_caches`, `spool_dir`,
 * `chunk_size` (docs/CONFIG.md).
 *
 * @module
 */

import {
  arrayValue,
  checkKeys,
  type ConfigContext,
  integerField,
  type Json,
  objectValue,
  stringField,
} from "./_fields.ts";
import { TARGET_SHAPE, targetFromJson } from "./_targets.ts";
import {
  type CacheConfig,
  DEFAULT_CACHE_CAPACITY,
  DEFAULT_CACHE_SHARDS,
  MAX_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
  type ReadOnlyCacheConfig,
  type TesseraConfig,
} from "./types.ts";

/** The top-level keys of Tessera's shape. */
export const TESSERA_KEYS = ["targets", "read_only", "cache", "read_only_caches", "spool_dir", "chunk_size"];

const MAX_SHARDS = 65_536;
const CACHE_SHAPE = '"/dir" or {"directory": "/dir", "num_shards": 128, "capacity": 10000}';
const READ_ONLY_CACHE_SHAPE = '"/dir" or {"directory": "/dir", "num_shards": 128}';

/** Normalises a config object written in Tessera's shape. */
export function tesseraConfig(cx: ConfigContext, obj: Json, alsoSuggest: readonly string[]): TesseraConfig {
  checkKeys(cx, obj, "", TESSERA_KEYS, { alsoSuggest });
  const config: TesseraConfig = { targets: [], readOnly: [], readOnlyCaches: [] };
  if (obj.targets !== undefined) {
    const list = arrayValue(cx, obj.targets, "targets", `an array of targets, each ${TARGET_SHAPE}`);
    config.targets = list.map((item, i) => {
      const path = `targets[${i}]`;
      const target = targetFromJson(cx, item, path);
      if (target.kind === "http") {
        cx.fail(`${path} is an HTTP store, which is read-only; list it under "read_only" instead`);
      }
      return target;
    });
  }
  if (obj.read_only !== undefined) {
    const list = arrayValue(cx, obj.read_only, "read_only", `an array of targets, each ${TARGET_SHAPE}`);
    config.readOnly = list.map((item, i) => targetFromJson(cx, item, `read_only[${i}]`));
  }
  if (obj.cache !== undefined) config.cache = cache(cx, obj.cache, "cache");
  if (obj.read_only_caches !== undefined) {
    const list = arrayValue(
      cx,
      obj.read_only_caches,
      "read_only_caches",
      `an array of ${READ_ONLY_CACHE_SHAPE}`,
    );
    config.readOnlyCaches = list.map((item, i) => readOnlyCache(cx, item, `read_only_caches[${i}]`));
  }
  const spool = stringField(cx, obj, "spool_dir", "", false);
  if (spool !== undefined) config.spoolDir = cx.path(spool);
  if (obj.chunk_size !== undefined) config.chunkSize = chunkSize(cx, obj.chunk_size, "chunk_size");
  return config;
}

function cache(cx: ConfigContext, value: unknown, path: string): CacheConfig {
  if (typeof value === "string") {
    if (value.trim() === "") cx.invalid(path, value, CACHE_SHAPE);
    return { directory: cx.path(value), numShards: DEFAULT_CACHE_SHARDS, capacity: DEFAULT_CACHE_CAPACITY };
  }
  const obj = objectValue(cx, value, path, CACHE_SHAPE);
  checkKeys(cx, obj, path, ["directory", "num_shards", "capacity"]);
  return {
    directory: cx.path(stringField(cx, obj, "directory", path, true)),
    numShards: integerField(cx, obj, "num_shards", path, {
      min: 0,
      max: MAX_SHARDS,
      fallback: DEFAULT_CACHE_SHARDS,
    }),
    capacity: integerField(cx, obj, "capacity", path, {
      min: 1,
      max: Number.MAX_SAFE_INTEGER,
      fallback: DEFAULT_CACHE_CAPACITY,
    }),
  };
}

function readOnlyCache(cx: ConfigContext, value: unknown, path: string): ReadOnlyCacheConfig {
  if (typeof value === "string") {
    if (value.trim() === "") cx.invalid(path, value, READ_ONLY_CACHE_SHAPE);
    return { directory: cx.path(value), numShards: DEFAULT_CACHE_SHARDS };
  }
  const obj = objectValue(cx, value, path, READ_ONLY_CACHE_SHAPE);
  checkKeys(cx, obj, path, ["directory", "num_shards"]);
  return {
    directory: cx.path(stringField(cx, obj, "directory", path, true)),
    numShards: integerField(cx, obj, "num_shards", path, {
      min: 0,
      max: MAX_SHARDS,
      fallback: DEFAULT_CACHE_SHARDS,
    }),
  };
}

function chunkSize(cx: ConfigContext, value: unknown, path: string): number {
  const ok = typeof value === "number" && Number.isInteger(value) && value >= MIN_CHUNK_SIZE &&
    value <= MAX_CHUNK_SIZE && (value & (value - 1)) === 0;
  if (!ok) cx.invalid(path, value, `a power of two from ${MIN_CHUNK_SIZE} to ${MAX_CHUNK_SIZE} (bytes)`);
  return value as number;
}
