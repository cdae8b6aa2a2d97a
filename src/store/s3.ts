/**
 * A store in an S3 bucket, under an optional key prefix.
 *
 * @module
 */

import { S3Client, type S3ClientOptions } from "../s3/client.ts";
import { checkKey, checkPrefix } from "./keys.ts";
import { checkRange } from "../net/range.ts";
import type {
  BlobStore,
  GetOptions,
  GetResult,
  HeadResult,
  ListItem,
  ListOptions,
  PutOptions,
  StoreCallOptions,
} from "./types.ts";

/** Options of {@linkcode S3Store}. */
export interface S3StoreOptions {
  /** Keys are stored under this prefix inside the bucket, e.g. `"backups/"`. @default {""} */
  prefix?: string | undefined;
}

/**
 * A {@linkcode BlobStore} in an S3-compatible bucket. Conditional puts are passed to the server, which may
 * ignore them, so `capabilities.conditionalPut` is false.
 *
 * @example
 * ```ts
 * import { S3Store } from "./s3.ts";
 * const store = new S3Store(
 *   { bucket: "backups", endpoint: "http://127.0.0.1:9000", credentials: null },
 *   { prefix: "tessera/" },
 * );
 * console.log(store.description); // s3://backups/tessera/ at http://127.0.0.1:9000
 * ```
 */
export class S3Store implements BlobStore {
  readonly client: S3Client;
  /** The key prefix inside the bucket, empty or ending with `/`. */
  readonly prefix: string;
  readonly description: string;
  readonly capabilities = Object.freeze({ write: true, list: true, conditionalPut: false });

  constructor(client: S3Client | S3ClientOptions, options: S3StoreOptions = {}) {
    this.client = client instanceof S3Client ? client : new S3Client(client);
    const prefix = options.prefix ?? "";
    if (prefix !== "") {
      checkPrefix(prefix);
      if (!prefix.endsWith("/")) {
        throw new TypeError(`Cannot use S3 prefix "${prefix}": a store prefix must end with "/"`);
      }
    }
    this.prefix = prefix;
    const where = new URL(this.client.url);
    this.description = `s3://${this.client.bucket}/${prefix} at ${where.origin}`;
  }

  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    checkKey(key);
    checkRange(options.range);
    const got = await this.client.getObject(this.prefix + key, options);
    if (got.status !== "ok") return got;
    return {
      status: "ok",
      body: got.body,
      key,
      size: got.size,
      etag: got.etag,
      lastModified: got.lastModified,
    };
  }

  async head(key: string, options: StoreCallOptions = {}): Promise<HeadResult> {
    checkKey(key);
    const info = await this.client.headObject(this.prefix + key, options);
    if (info.status !== "ok") return info;
    return { status: "ok", key, size: info.size, etag: info.etag, lastModified: info.lastModified };
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<{ etag: string }> {
    checkKey(key);
    return await this.client.putObject(this.prefix + key, body, options);
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncGenerator<ListItem> {
    checkPrefix(prefix);
    const cut = this.prefix.length;
    for await (
      const entry of this.client.listObjectsV2({
        prefix: this.prefix + prefix,
        delimiter: options.delimiter,
        signal: options.signal,
      })
    ) {
      if (entry.type === "prefix") {
        yield { type: "prefix", prefix: entry.prefix.slice(cut) };
      } else {
        yield {
          type: "object",
          key: entry.key.slice(cut),
          size: entry.size,
          etag: entry.etag,
          lastModified: entry.lastModified,
        };
      }
    }
  }

  async delete(key: string, options: StoreCallOptions = {}): Promise<void> {
    checkKey(key);
    await this.client.deleteObject(this.prefix + key, options);
  }
}
