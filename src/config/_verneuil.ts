/**
 * Verneuil's config shape, accepted as Verneuil users write it: `replication_spooling_dir` and
 * `replication_targets` of `s3`, `local` and `read_only` entries. Keys only Verneuil uses are ignored.
 *
 * @module
 */

import {
  arrayValue,
  booleanField,
  checkKeys,
  child,
  type ConfigContext,
  integerField,
  type Json,
  objectValue,
  stringField,
} from "./_fields.ts";
import { endpointField, rejectCredentials } from "./_targets.ts";
import type { S3TargetConfig, TesseraConfig } from "./types.ts";

/** The top-level keys of Verneuil's shape that Tessera uses. */
export const VERNEUIL_KEYS = ["replication_targets", "replication_spooling_dir"];
/** Verneuil's other top-level keys: accepted, and meaningless to Tessera. */
export const VERNEUIL_IGNORED_KEYS = [
  "make_default",
  "tempdir",
  "replication_spooling_dir_permissions",
  "snapshot_loading_policy",
];

const MAX_SHARDS = 65_536;
const TARGET_SHAPE = '{"s3": {...}}, {"local": {...}} or {"read_only": {...}}';
const S3_KEYS = ["region", "endpoint", "chunk_bucket", "manifest_bucket", "domain_addressing"];
const S3_HINTS = { bucket: '"manifest_bucket" and "chunk_bucket"', force_path_style: '"domain_addressing"' };

/** Normalises a config object written in Verneuil's shape. */
export function verneuilConfig(cx: ConfigContext, obj: Json, alsoSuggest: readonly string[]): TesseraConfig {
  checkKeys(cx, obj, "", VERNEUIL_KEYS, { ignored: VERNEUIL_IGNORED_KEYS, alsoSuggest });
  const config: TesseraConfig = { targets: [], readOnly: [], readOnlyCaches: [] };
  const spool = stringField(cx, obj, "replication_spooling_dir", "", false);
  if (spool !== undefined) config.spoolDir = cx.path(spool);
  if (obj.replication_targets === undefined) return config;
  const list = arrayValue(cx, obj.replication_targets, "replication_targets", `an array of ${TARGET_SHAPE}`);
  for (const [i, item] of list.entries()) {
    const path = `replication_targets[${i}]`;
    const entry = objectValue(cx, item, path, `one of ${TARGET_SHAPE}`);
    const [kind, ...more] = Object.keys(entry);
    if (kind === undefined || more.length > 0) cx.invalid(path, item, `one of ${TARGET_SHAPE}`);
    checkKeys(cx, entry, path, ["s3", "local", "read_only"]);
    const at = child(path, kind);
    const body = objectValue(cx, entry[kind], at, "an object");
    if (kind === "s3") config.targets.push(s3Target(cx, body, at));
    else if (kind === "local") addLocal(cx, config, body, at);
    else readOnly(cx, config, body, at);
  }
  return config;
}

/** Verneuil's S3 target: one bucket for chunks and one for manifests, no key prefix. */
function s3Target(cx: ConfigContext, obj: Json, path: string): S3TargetConfig {
  rejectCredentials(cx, obj, path);
  checkKeys(cx, obj, path, S3_KEYS, { ignored: ["create_buckets_on_demand"], hints: S3_HINTS });
  const manifestBucket = stringField(cx, obj, "manifest_bucket", path, true);
  const chunkBucket = stringField(cx, obj, "chunk_bucket", path, true);
  const target: S3TargetConfig = { kind: "s3", bucket: manifestBucket, prefix: "" };
  let region = stringField(cx, obj, "region", path, false);
  let endpoint = endpointField(cx, obj, "endpoint", path);
  // Verneuil reads a region with a dot and no endpoint as "name.host": region "name" at https://host.
  const dot = region?.indexOf(".") ?? -1;
  if (region !== undefined && endpoint === undefined && dot > 0 && dot < region.length - 1) {
    endpoint = `https://${region.slice(dot + 1)}`;
    region = region.slice(0, dot);
  }
  if (region !== undefined) target.region = region;
  if (endpoint !== undefined) target.endpoint = endpoint;
  const domainAddressing = booleanField(cx, obj, "domain_addressing", path);
  if (domainAddressing !== undefined) target.forcePathStyle = !domainAddressing;
  if (chunkBucket !== manifestBucket) target.chunkBucket = chunkBucket;
  return target;
}

/** Verneuil uses the first `local` target as its read-write cache and any later ones read-only. */
function addLocal(cx: ConfigContext, config: TesseraConfig, obj: Json, path: string): void {
  checkKeys(cx, obj, path, ["directory", "num_shards", "capacity"]);
  const directory = cx.path(stringField(cx, obj, "directory", path, true));
  const numShards = integerField(cx, obj, "num_shards", path, { min: 0, max: MAX_SHARDS });
  const capacity = integerField(cx, obj, "capacity", path, { min: 0, max: Number.MAX_SAFE_INTEGER });
  if (config.cache === undefined) config.cache = { directory, numShards, capacity };
  else config.readOnlyCaches.push({ directory, numShards });
}

/**
 * Verneuil's `read_only` target is another process's cache: `{"directory", "num_shards"}`. Tessera also
 * accepts a nested `{"s3": {...}}` (a bucket only read) or `{"local": {...}}` (a cache only read).
 */
function readOnly(cx: ConfigContext, config: TesseraConfig, obj: Json, path: string): void {
  const keys = Object.keys(obj);
  if (keys.length === 1 && (keys[0] === "s3" || keys[0] === "local")) {
    const kind = keys[0];
    const at = child(path, kind);
    const body = objectValue(cx, obj[kind], at, "an object");
    if (kind === "s3") {
      config.readOnly.push(s3Target(cx, body, at));
      return;
    }
    checkKeys(cx, body, at, ["directory", "num_shards"], { ignored: ["capacity"] });
    config.readOnlyCaches.push({
      directory: cx.path(stringField(cx, body, "directory", at, true)),
      numShards: integerField(cx, body, "num_shards", at, { min: 0, max: MAX_SHARDS }),
    });
    return;
  }
  checkKeys(cx, obj, path, ["directory", "num_shards"], { ignored: ["append_instance_id"] });
  config.readOnlyCaches.push({
    directory: cx.path(stringField(cx, obj, "directory", path, true)),
    numShards: integerField(cx, obj, "num_shards", path, { min: 0, max: MAX_SHARDS, fallback: 0 }),
  });
}
