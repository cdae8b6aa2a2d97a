/**
 * Targets in Tessera's own notation: URL-like strings (`s3://bucket/prefix`, `file:///dir`, a directory
 * path, `https://host/path`) and objects (`{"s3": {...}}`, `{"directory": "/dir"}`, `{"http": "https://…"}`).
 *
 * @module
 */

import { checkPrefix } from "../store/keys.ts";
import {
  booleanField,
  checkKeys,
  child,
  type ConfigContext,
  isSecretPath,
  type Json,
  objectValue,
  stringField,
} from "./_fields.ts";
import type { S3TargetConfig, TargetConfig } from "./types.ts";

/** The expected shape of one target, for messages. */
export const TARGET_SHAPE = '"s3://bucket/prefix", "file:///dir", a directory path, "https://host/path", ' +
  '{"s3": {"bucket": "..."}}, {"directory": "/dir"} or {"http": "https://host/path"}';

const S3_KEYS = [
  "bucket",
  "prefix",
  "region",
  "endpoint",
  "force_path_style",
  "chunk_bucket",
  "chunk_prefix",
];
const S3_HINTS: Record<string, string> = {
  manifest_bucket: '"bucket" (Verneuil\'s manifest_bucket)',
  domain_addressing: '"force_path_style", its opposite',
  path_style: '"force_path_style"',
};

/** A target from its JSON form: a string or a one-key object. */
export function targetFromJson(cx: ConfigContext, value: unknown, path: string): TargetConfig {
  if (typeof value === "string") return targetFromString(cx, value, path);
  const obj = objectValue(cx, value, path, TARGET_SHAPE);
  const keys = Object.keys(obj);
  const [kind] = keys;
  if (keys.length !== 1 || kind === undefined) cx.invalid(path, value, `one of ${TARGET_SHAPE}`);
  const at = child(path, kind);
  if (kind === "s3") return s3Target(cx, objectValue(cx, obj.s3, at, '{"bucket": "...", ...}'), at);
  if (kind === "directory") {
    return { kind: "directory", directory: cx.path(stringField(cx, obj, "directory", path, true)) };
  }
  if (kind === "http") return httpTarget(cx, stringField(cx, obj, "http", path, true), at);
  checkKeys(cx, obj, path, ["s3", "directory", "http"], {
    hints: { local: '"directory" (a cache directory belongs under "cache")', url: '"http"' },
  });
  return cx.invalid(path, value, `one of ${TARGET_SHAPE}`);
}

/** A target from its URL-like string form, parsed the way `openStore` parses targets. */
export function targetFromString(cx: ConfigContext, value: string, path: string): TargetConfig {
  const expected = `a target: ${TARGET_SHAPE}`;
  if (typeof value !== "string" || value.trim() === "") cx.invalid(path, value, expected);
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(value)?.[1]?.toLowerCase();
  if (scheme === "s3") {
    const match = /^s3:\/\/([^/]+)(?:\/(.*))?$/is.exec(value);
    const bucket = match?.[1];
    if (!bucket) cx.invalid(path, value, "s3://bucket or s3://bucket/prefix");
    // Bucket names hold neither, so either means user:password@ in the URL.
    if (bucket.includes("@") || bucket.includes(":")) credentialsInUrl(cx, path);
    return { kind: "s3", bucket, prefix: s3Prefix(cx, match?.[2] ?? "", path, value) };
  }
  if (scheme === "file") {
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      // reported below
    }
    if (!url || (url.host !== "" && url.host !== "localhost")) {
      cx.invalid(path, value, "a local file URL such as file:///abs/dir");
    }
    return { kind: "directory", directory: cx.path(decodeURIComponent(url.pathname)) };
  }
  if (scheme === "http" || scheme === "https") return httpTarget(cx, value, path);
  if (scheme === "memory") {
    cx.invalid(path, value, "a target that outlives the process (memory: stores exist inside one process)");
  }
  if (scheme && scheme.length > 1) cx.invalid(path, value, expected);
  return { kind: "directory", directory: cx.path(value) };
}

/** Tessera's `{"s3": {...}}` object. */
function s3Target(cx: ConfigContext, obj: Json, path: string): S3TargetConfig {
  rejectCredentials(cx, obj, path);
  checkKeys(cx, obj, path, S3_KEYS, { hints: S3_HINTS });
  const bucket = stringField(cx, obj, "bucket", path, true);
  const target: S3TargetConfig = {
    kind: "s3",
    bucket,
    prefix: s3Prefix(cx, obj.prefix, child(path, "prefix")),
  };
  const region = stringField(cx, obj, "region", path, false);
  if (region !== undefined) target.region = region;
  const endpoint = endpointField(cx, obj, "endpoint", path);
  if (endpoint !== undefined) target.endpoint = endpoint;
  const pathStyle = booleanField(cx, obj, "force_path_style", path);
  if (pathStyle !== undefined) target.forcePathStyle = pathStyle;
  const chunkBucket = stringField(cx, obj, "chunk_bucket", path, false);
  if (chunkBucket !== undefined && chunkBucket !== bucket) target.chunkBucket = chunkBucket;
  if (obj.chunk_prefix !== undefined) {
    const chunkPrefix = s3Prefix(cx, obj.chunk_prefix, child(path, "chunk_prefix"));
    if (chunkPrefix !== target.prefix) target.chunkPrefix = chunkPrefix;
  }
  return target;
}

function httpTarget(cx: ConfigContext, value: string, path: string): TargetConfig {
  const url = parseUrl(value);
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    cx.invalid(path, value, "an http:// or https:// URL");
  }
  if (url.username || url.password) credentialsInUrl(cx, path);
  return { kind: "http", url: value };
}

/**
 * A key prefix inside a bucket, normalised to empty or ending with `/`, without leading slashes. `shown`
 * is the value a message shows (the whole URL when the prefix came from one).
 */
export function s3Prefix(cx: ConfigContext, value: unknown, path: string, shown: unknown = value): string {
  if (value === undefined) return "";
  const expected = 'a key prefix such as "team/db" (no empty, "." or ".." segments)';
  if (typeof value !== "string") cx.invalid(path, shown, expected);
  const trimmed = value.replace(/^\/+/, "");
  const prefix = trimmed === "" || trimmed.endsWith("/") ? trimmed : `${trimmed}/`;
  try {
    checkPrefix(prefix);
  } catch {
    cx.invalid(path, shown, expected);
  }
  return prefix;
}

/** An optional endpoint field: an http(s) URL without credentials. */
export function endpointField(cx: ConfigContext, obj: Json, key: string, path: string): string | undefined {
  const value = stringField(cx, obj, key, path, false);
  if (value === undefined) return undefined;
  const url = parseUrl(value);
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    cx.invalid(child(path, key), value, "an http:// or https:// URL such as http://127.0.0.1:9000");
  }
  if (url.username || url.password) credentialsInUrl(cx, child(path, key));
  return value;
}

/** Credentials come from the environment only: a config file is often world-readable. */
export function rejectCredentials(cx: ConfigContext, obj: Json, path: string): void {
  const key = Object.keys(obj).find((k) => isSecretPath(k));
  if (key === undefined) return;
  cx.fail(
    `${child(path, key)} holds credentials, which Tessera never reads from a config; ` +
      "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) in the environment instead",
  );
}

function credentialsInUrl(cx: ConfigContext, path: string): never {
  return cx.fail(
    `${path} holds credentials in its URL, which Tessera never reads from a config; remove them and ` +
      "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment (or use an unauthenticated URL)",
  );
}

function parseUrl(value: string): URL | undefined {
  try {
    return new URL(value);
  } catch {
    return undefined;
  }
}
