/**
 * Opens a store from a URL-like target, the way the CLI and configuration name stores.
 *
 * @module
 */

import { errorMessage, TesseraError } from "../errors.ts";
import { s3OptionsFromEnv } from "../s3/env.ts";
import { HttpStore } from "./http.ts";
import { LocalStore } from "./local.ts";
import { MemoryStore } from "./memory.ts";
import { S3Store } from "./s3.ts";
import type { BlobStore } from "./types.ts";

/** Options of {@linkcode openStore}. */
export interface OpenStoreOptions {
  /** Environment variables for S3 credentials, region and endpoint. @default {{}} */
  env?: Record<string, string | undefined>;
}

/**
 * Opens the store a target names:
 * - `s3://bucket/prefix`: S3, configured from `AWS_*` variables in `options.env`;
 * - `file:///abs/dir`, `/abs/dir` or `./dir`: a local directory;
 * - `http://…` or `https://…`: a read-only HTTP host;
 * - `memory:`: a new, empty in-memory store.
 *
 * @example
 * ```ts
 * import { openStore } from "./open.ts";
 * const store = openStore("file:///tmp/tessera-backups");
 * console.log(store.description); // file:///tmp/tessera-backups
 * ```
 */
export function openStore(target: string, options: OpenStoreOptions = {}): BlobStore {
  if (typeof target !== "string" || target.trim() === "") {
    throw new TesseraError(
      "CONFIG_INVALID",
      "Cannot open a store: the target is empty; give s3://bucket/prefix or a directory",
    );
  }
  if (target === "memory:") return new MemoryStore();
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(target)?.[1]?.toLowerCase();
  if (scheme === "s3") return openS3(target, options.env ?? {});
  if (scheme === "file") return new LocalStore(fileUrlPath(target));
  if (scheme === "http" || scheme === "https") return new HttpStore(target);
  if (scheme && scheme.length > 1) {
    throw new TesseraError(
      "CONFIG_INVALID",
      `Cannot open store "${target}": unknown scheme "${scheme}:"; use s3://, file://, http(s):// or a directory path`,
    );
  }
  return new LocalStore(target);
}

function openS3(target: string, env: Record<string, string | undefined>): S3Store {
  const match = /^s3:\/\/([^/]+)(?:\/(.*))?$/i.exec(target);
  const bucket = match?.[1];
  if (!bucket) {
    throw new TesseraError(
      "CONFIG_INVALID",
      `Cannot open store "${target}": expected s3://bucket or s3://bucket/prefix`,
    );
  }
  let prefix = match?.[2] ?? "";
  if (prefix !== "" && !prefix.endsWith("/")) prefix += "/";
  try {
    return new S3Store(s3OptionsFromEnv(env, { bucket }), { prefix });
  } catch (error) {
    const reason = errorMessage(error);
    throw new TesseraError("CONFIG_INVALID", `Cannot open store "${target}": ${reason}`, { cause: error });
  }
}

function fileUrlPath(target: string): string {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new TesseraError("CONFIG_INVALID", `Cannot open store "${target}": not a valid file URL`);
  }
  if (url.host !== "" && url.host !== "localhost") {
    throw new TesseraError(
      "CONFIG_INVALID",
      `Cannot open store "${target}": file URLs name a local path (file:///abs/dir), not host "${url.host}"`,
    );
  }
  return decodeURIComponent(url.pathname);
}
