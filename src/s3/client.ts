/**
 * A small S3 client on `fetch` and aws4fetch's SigV4 signer: the object operations Tessera needs, with
 * bounded retries, per-try timeouts, cancellation and typed errors.
 *
 * @module
 */

import { AwsV4Signer } from "aws4fetch";
import { compareCodePoints, concatBytes, toBase64, toHex } from "../bytes.ts";
import { TesseraError } from "../errors.ts";
import { type ByteRange, checkRange, parseHttpDate, rangedBody, rangeHeader } from "../net/range.ts";
import { resolveRetryPolicy, type RetryPolicy } from "../net/backoff.ts";
import { type HttpRequest, type HttpResponse, isRetriableStatus, sendWithRetries } from "../net/http.ts";
import { bucketUrl, encodeKey, objectUrl, type S3Location, withQuery } from "./endpoint.ts";
import { S3Error } from "./errors.ts";
import { md5Base64 } from "./md5.ts";
import {
  buildDeleteObjectsBody,
  type DeleteObjectsResult,
  type ListObjectsV2Page,
  parseCopyObjectResult,
  parseDeleteObjectsResult,
  parseErrorBody,
  parseListObjectsV2,
  type S3ErrorBody,
} from "./responses.ts";

/** Keys that sign requests; kept private to the client and never printed. */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Options of {@linkcode S3Client}. */
export interface S3ClientOptions extends S3Location, Partial<RetryPolicy> {
  /** Signing keys; `null` or absent sends unsigned requests, which public buckets allow. */
  credentials?: S3Credentials | null | undefined;
  /** The fetch to use. @default {globalThis.fetch} */
  fetch?: typeof fetch | undefined;
  /**
   * Where requests carry their SigV4 signature: `"header"`, an `Authorization` header; `"query"`, the URL's
   * query string (presigned requests, valid for `presignExpiresSeconds`), so no `Authorization` or
   * `x-amz-*` request header is sent: what a browser page uses, since such headers make every request need
   * a CORS preflight. @default {"header"}
   */
  signing?: "header" | "query" | undefined;
  /** How long a request signed in its query string stays valid, in seconds (1 to 604800). @default {300} */
  presignExpiresSeconds?: number | undefined;
}

/** Options shared by every operation. */
export interface S3RequestOptions {
  signal?: AbortSignal | undefined;
}

export type { ByteRange };

/** Options of {@linkcode S3Client.getObject}. */
export interface GetObjectOptions extends S3RequestOptions {
  range?: ByteRange | undefined;
  /** Answer `not_modified` when the object's ETag still equals this one. */
  ifNoneMatch?: string | undefined;
  ifMatch?: string | undefined;
}

/** An object's bytes and what S3 says of it. */
export interface S3Object {
  status: "ok";
  body: Uint8Array;
  /** The size of the whole object, not of the range read. */
  size: number;
  etag: string;
  lastModified: Date | undefined;
  contentType: string | undefined;
}

/** The result of {@linkcode S3Client.getObject}. */
export type GetObjectResult = S3Object | { status: "not_found" } | { status: "not_modified"; etag: string };

/** What {@linkcode S3Client.headObject} reports of an object that exists. */
export interface S3ObjectInfo {
  status: "ok";
  size: number;
  etag: string;
  lastModified: Date | undefined;
  contentType: string | undefined;
  metadata: Record<string, string>;
}

/** A body for {@linkcode S3Client.putObject}. Streams are read whole first: S3 needs the length up front and
 * a retried request must send the same bytes again. */
export type PutBody = Uint8Array | string | ReadableStream<Uint8Array>;

/** Options of {@linkcode S3Client.putObject}. */
export interface PutObjectOptions extends S3RequestOptions {
  contentType?: string | undefined;
  /** `true` computes the Content-MD5 header; a string is sent as given (base64). */
  contentMd5?: true | string | undefined;
  /** `true` computes `x-amz-checksum-sha256`; a string is sent as given (base64). */
  checksumSha256?: true | string | undefined;
  /** `"*"` writes only when the key is absent; stores that ignore it write anyway. */
  ifNoneMatch?: string | undefined;
  /** Writes only when the current ETag matches; stores that ignore it write anyway. */
  ifMatch?: string | undefined;
  /** User metadata, sent as `x-amz-meta-*` headers. */
  metadata?: Record<string, string> | undefined;
}

/** Options of {@linkcode S3Client.listObjectsV2}. */
export interface ListObjectsOptions extends S3RequestOptions {
  prefix?: string | undefined;
  delimiter?: string | undefined;
  startAfter?: string | undefined;
  /** Keys per page, at most 1000. @default {1000} */
  pageSize?: number | undefined;
}

/** One listed object, or one common prefix when a delimiter is given. */
export type ListEntry =
  | { type: "object"; key: string; size: number; etag: string; lastModified: Date | undefined }
  | { type: "prefix"; prefix: string };

/** Largest single PUT S3 accepts. */
const MAX_PUT_BYTES = 5 * 1024 ** 3;
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

interface Call {
  operation: string;
  key?: string | undefined;
  method: string;
  url: string;
  headers?: Record<string, string> | undefined;
  body?: Uint8Array | undefined;
  signal?: AbortSignal | undefined;
  /** Statuses the caller handles itself; anything else outside 2xx throws. */
  accept?: readonly number[] | undefined;
}

/**
 * An S3 client for one bucket.
 *
 * @example Reading and writing an object
 * ```ts
 * import { S3Client } from "./client.ts";
 *
 * const s3 = new S3Client({
 *   bucket: "backups",
 *   endpoint: "http://127.0.0.1:9000",
 *   credentials: { accessKeyId: "AKIA...", secretAccessKey: "..." },
 * });
 * await s3.putObject("hello.txt", "hello");
 * const got = await s3.getObject("hello.txt");
 * if (got.status === "ok") console.log(new TextDecoder().decode(got.body));
 * ```
 */
export class S3Client {
  /** The bucket this client reads and writes. */
  readonly bucket: string;
  /** The region requests are signed for. */
  readonly region: string;
  /** The bucket's URL, without credentials. */
  readonly url: string;
  readonly #signing: "header" | "query";
  readonly #presignExpires: number;
  readonly #credentials: S3Credentials | null;
  readonly #policy: RetryPolicy;
  readonly #fetch: typeof fetch | undefined;
  readonly #signingCache = new Map<string, ArrayBuffer>();

  constructor(options: S3ClientOptions) {
    this.bucket = options.bucket;
    this.region = options.region ?? "us-east-1";
    this.url = bucketUrl(options);
    this.#credentials = options.credentials ?? null;
    this.#policy = resolveRetryPolicy(options);
    this.#fetch = options.fetch;
    const { signing = "header", presignExpiresSeconds = 300 } = options;
    if (signing !== "header" && signing !== "query") {
      throw new TypeError(
        `Cannot create an S3 client: signing ${JSON.stringify(signing)} is not "header" or "query"`,
      );
    }
    if (
      !Number.isSafeInteger(presignExpiresSeconds) || presignExpiresSeconds < 1 ||
      presignExpiresSeconds > 604800
    ) {
      throw new RangeError(
        `Cannot create an S3 client: presignExpiresSeconds ${presignExpiresSeconds} is not 1 to 604800 (7 days)`,
      );
    }
    this.#signing = signing;
    this.#presignExpires = presignExpiresSeconds;
  }

  /** Reads an object, or a byte range of it. A range past the end reads zero bytes. */
  async getObject(key: string, options: GetObjectOptions = {}): Promise<GetObjectResult> {
    const headers: Record<string, string> = {};
    const { range } = options;
    if (range) {
      checkRange(range);
      if (range.length === 0) {
        const info = await this.headObject(key, options);
        if (info.status === "not_found") return info;
        return { ...info, status: "ok", body: new Uint8Array(0) };
      }
      headers.range = rangeHeader(range);
    }
    if (options.ifNoneMatch !== undefined) headers["if-none-match"] = options.ifNoneMatch;
    if (options.ifMatch !== undefined) headers["if-match"] = options.ifMatch;
    const response = await this.#call({
      operation: "GetObject",
      key,
      method: "GET",
      url: objectUrl(this.url, key),
      headers,
      signal: options.signal,
      accept: [304, 404, 416],
    });
    const etag = response.headers.get("etag") ?? "";
    if (response.status === 304) return { status: "not_modified", etag: options.ifNoneMatch ?? etag };
    if (response.status === 404) return this.#notFound("GetObject", key, response);
    if (response.status === 416) {
      const info = await this.headObject(key, options);
      if (info.status === "not_found") return info;
      return { ...info, status: "ok", body: new Uint8Array(0) };
    }
    return readObject(response, range);
  }

  /** Reads an object's size, ETag and metadata without its body. A HEAD response has no body to tell a
   * missing key from a missing bucket, so both answer `not_found`. */
  async headObject(
    key: string,
    options: S3RequestOptions = {},
  ): Promise<S3ObjectInfo | { status: "not_found" }> {
    const response = await this.#call({
      operation: "HeadObject",
      key,
      method: "HEAD",
      url: objectUrl(this.url, key),
      signal: options.signal,
      accept: [404],
    });
    if (response.status === 404) return { status: "not_found" };
    const metadata: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      if (name.startsWith("x-amz-meta-")) metadata[name.slice("x-amz-meta-".length)] = value;
    });
    return {
      status: "ok",
      size: Number(response.headers.get("content-length") ?? 0),
      etag: response.headers.get("etag") ?? "",
      lastModified: parseHttpDate(response.headers.get("last-modified")),
      contentType: response.headers.get("content-type") ?? undefined,
      metadata,
    };
  }

  /** Writes an object whole. Throws an `S3Error` with code `PRECONDITION_FAILED` when a condition fails. */
  async putObject(key: string, body: PutBody, options: PutObjectOptions = {}): Promise<{ etag: string }> {
    const bytes = await toBytes(body, key);
    const headers: Record<string, string> = {
      "content-type": options.contentType ?? "application/octet-stream",
    };
    if (options.contentMd5 !== undefined) {
      headers["content-md5"] = options.contentMd5 === true ? md5Base64(bytes) : options.contentMd5;
    }
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
    headers["x-amz-content-sha256"] = toHex(digest);
    if (options.checksumSha256 !== undefined) {
      headers["x-amz-checksum-sha256"] = options.checksumSha256 === true
        ? toBase64(digest)
        : options.checksumSha256;
    }
    if (options.ifNoneMatch !== undefined) headers["if-none-match"] = options.ifNoneMatch;
    if (options.ifMatch !== undefined) headers["if-match"] = options.ifMatch;
    for (const [name, value] of Object.entries(options.metadata ?? {})) {
      headers[`x-amz-meta-${name.toLowerCase()}`] = value;
    }
    const response = await this.#call({
      operation: "PutObject",
      key,
      method: "PUT",
      url: objectUrl(this.url, key),
      headers,
      body: bytes,
      signal: options.signal,
    });
    return { etag: response.headers.get("etag") ?? "" };
  }

  /** Deletes an object; deleting a missing key succeeds, as S3 does. */
  async deleteObject(key: string, options: S3RequestOptions = {}): Promise<void> {
    const response = await this.#call({
      operation: "DeleteObject",
      key,
      method: "DELETE",
      url: objectUrl(this.url, key),
      signal: options.signal,
      accept: [404],
    });
    if (response.status === 404) this.#notFound("DeleteObject", key, response);
  }

  /** Deletes many objects, 1000 per request; per-key failures come back in `errors`. */
  async deleteObjects(keys: readonly string[], options: S3RequestOptions = {}): Promise<DeleteObjectsResult> {
    const result: DeleteObjectsResult = { deleted: [], errors: [] };
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const body = new TextEncoder().encode(buildDeleteObjectsBody(batch, { quiet: true }));
      const response = await this.#call({
        operation: "DeleteObjects",
        method: "POST",
        url: withQuery(this.url, { delete: "" }),
        headers: { "content-type": "application/xml", "content-md5": md5Base64(body) },
        body,
        signal: options.signal,
      });
      const page = parseDeleteObjectsResult(new TextDecoder().decode(response.body));
      const failed = new Set(page.errors.map((e) => e.key));
      result.errors.push(...page.errors);
      // Quiet mode reports only failures: every other key of the batch was deleted.
      result.deleted.push(...batch.filter((k) => !failed.has(k)));
    }
    return result;
  }

  /** Copies an object within the bucket; copying onto itself with `REPLACE` refreshes its date. */
  async copyObject(
    sourceKey: string,
    destinationKey: string,
    options: S3RequestOptions & { metadataDirective?: "COPY" | "REPLACE" } = {},
  ): Promise<{ etag: string; lastModified: Date | undefined }> {
    const headers: Record<string, string> = {
      "x-amz-copy-source": `/${this.bucket}/${encodeKey(sourceKey)}`,
    };
    if (options.metadataDirective) headers["x-amz-metadata-directive"] = options.metadataDirective;
    const response = await this.#call({
      operation: "CopyObject",
      key: destinationKey,
      method: "PUT",
      url: objectUrl(this.url, destinationKey),
      headers,
      signal: options.signal,
    });
    const text = new TextDecoder().decode(response.body);
    // S3 may answer 200 and still report a failure in the body.
    const error = parseErrorBody(text);
    if (error) throw this.#error("CopyObject", destinationKey, response.status, error, 1);
    return parseCopyObjectResult(text);
  }

  /** Lists keys in order, following continuation tokens page by page. */
  async *listObjectsV2(options: ListObjectsOptions = {}): AsyncGenerator<ListEntry> {
    let token: string | undefined;
    do {
      const page = await this.listObjectsV2Page({ ...options, continuationToken: token });
      // S3 sends a page's objects and common prefixes apart; one sequence in key order is easier to use.
      const entries: ListEntry[] = [
        ...page.contents.map((object) => ({ type: "object" as const, ...object })),
        ...page.commonPrefixes.map((prefix) => ({ type: "prefix" as const, prefix })),
      ];
      entries.sort((a, b) =>
        compareCodePoints(a.type === "object" ? a.key : a.prefix, b.type === "object" ? b.key : b.prefix)
      );
      yield* entries;
      token = page.isTruncated ? page.nextContinuationToken : undefined;
      if (page.isTruncated && !token) {
        throw new TesseraError(
          "S3_BAD_RESPONSE",
          `S3 ListObjectsV2 of bucket "${this.bucket}" returned a truncated page without a continuation token`,
        );
      }
    } while (token);
  }

  /** Lists one page of keys. */
  async listObjectsV2Page(
    options: ListObjectsOptions & { continuationToken?: string | undefined } = {},
  ): Promise<ListObjectsV2Page> {
    const query: Record<string, string> = { "list-type": "2" };
    if (options.prefix) query.prefix = options.prefix;
    if (options.delimiter) query.delimiter = options.delimiter;
    if (options.startAfter) query["start-after"] = options.startAfter;
    if (options.continuationToken) query["continuation-token"] = options.continuationToken;
    if (options.pageSize !== undefined) {
      if (!Number.isInteger(options.pageSize) || options.pageSize < 1 || options.pageSize > 1000) {
        throw new RangeError(
          `Cannot list with pageSize ${options.pageSize}: expected an integer from 1 to 1000`,
        );
      }
      query["max-keys"] = String(options.pageSize);
    }
    const response = await this.#call({
      operation: "ListObjectsV2",
      method: "GET",
      url: withQuery(this.url, query),
      signal: options.signal,
    });
    return parseListObjectsV2(new TextDecoder().decode(response.body));
  }

  async #call(call: Call): Promise<HttpResponse> {
    if (call.key !== undefined) checkObjectKey(call.operation, call.key);
    const outcome = await sendWithRetries(() => this.#prepare(call), {
      policy: this.#policy,
      signal: call.signal,
      fetch: this.#fetch,
      shouldRetry: (response) => shouldRetry(response),
    });
    if (!outcome.ok) {
      throw new S3Error("S3_REQUEST_FAILED", {
        operation: call.operation,
        bucket: this.bucket,
        key: call.key,
        attempts: outcome.attempts,
        failure: outcome.failure.message,
        hint: failureHint(outcome.failure.kind, new URL(this.url).origin),
      }, { cause: outcome.failure.cause });
    }
    const { response } = outcome;
    if ((response.status >= 200 && response.status < 300) || call.accept?.includes(response.status)) {
      return response;
    }
    const body = parseErrorBody(new TextDecoder().decode(response.body));
    throw this.#error(call.operation, call.key, response.status, body, outcome.attempts);
  }

  async #prepare(call: Call): Promise<HttpRequest> {
    const headers = new Headers(call.headers);
    if (!this.#credentials) return { method: call.method, url: call.url, headers, body: call.body };
    const query = this.#signing === "query";
    let url = call.url;
    if (query) {
      // The payload is not signed (UNSIGNED-PAYLOAD, as presigned URLs have it); the expiry is.
      const presigned = new URL(url);
      presigned.searchParams.set("X-Amz-Expires", String(this.#presignExpires));
      url = presigned.href;
    } else if (!headers.has("x-amz-content-sha256")) {
      headers.set("x-amz-content-sha256", call.body?.length ? "UNSIGNED-PAYLOAD" : EMPTY_SHA256);
    }
    const signer = new AwsV4Signer({
      method: call.method,
      url,
      headers,
      signQuery: query,
      ...(call.body ? { body: call.body as Uint8Array<ArrayBuffer> } : {}),
      accessKeyId: this.#credentials.accessKeyId,
      secretAccessKey: this.#credentials.secretAccessKey,
      ...(this.#credentials.sessionToken ? { sessionToken: this.#credentials.sessionToken } : {}),
      service: "s3",
      region: this.region,
      cache: this.#signingCache,
    });
    const signed = await signer.sign();
    return { method: call.method, url: signed.url.toString(), headers: signed.headers, body: call.body };
  }

  #notFound(operation: string, key: string, response: HttpResponse): { status: "not_found" } {
    const body = parseErrorBody(new TextDecoder().decode(response.body));
    if (body && body.code !== "NoSuchKey" && body.code !== "NotFound") {
      throw this.#error(operation, key, 404, body, 1);
    }
    return { status: "not_found" };
  }

  #error(
    operation: string,
    key: string | undefined,
    status: number,
    body: S3ErrorBody | undefined,
    attempts: number,
  ): S3Error {
    const s3Code = body?.code ?? statusCode(status);
    return new S3Error(status === 412 ? "PRECONDITION_FAILED" : "S3_REQUEST_FAILED", {
      operation,
      bucket: this.bucket,
      key,
      status,
      s3Code,
      s3Message: body?.message,
      requestId: body?.requestId,
      attempts,
      hint: hintFor(status, s3Code, this.#credentials !== null),
    });
  }
}

function shouldRetry(response: HttpResponse): boolean {
  if (isRetriableStatus(response.status)) return true;
  if (response.status !== 400 && response.status !== 409) return false;
  const code = parseErrorBody(new TextDecoder().decode(response.body))?.code;
  return code === "RequestTimeout" || code === "OperationAborted" || code === "ConditionalRequestConflict";
}

// fetch's URL parser folds "." and ".." path segments (even percent-encoded), so such a key would reach
// another object: refuse it rather than read or write the wrong one.
function checkObjectKey(operation: string, key: string): void {
  if (key === "" || key.split("/").some((segment) => segment === "." || segment === "..")) {
    throw new TypeError(
      `Cannot ${operation} key ${JSON.stringify(key)}: keys that are empty or hold "." or ".." segments ` +
        "cannot be addressed over HTTP",
    );
  }
}

function failureHint(kind: "timeout" | "network" | "truncated", origin: string): string {
  if (kind === "timeout") {
    return `the server at ${origin} stopped answering; check the network or raise timeoutMs`;
  }
  if (kind === "truncated") return `connections to ${origin} drop mid-response; check the network or a proxy`;
  return `check that the endpoint ${origin} is reachable`;
}

function hintFor(status: number, code: string, signed: boolean): string | undefined {
  if (code === "NoSuchBucket") return "check the bucket name, region and endpoint";
  if (status === 403 && !signed) {
    return "no credentials are configured: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
  }
  if (status === 403) return "check the credentials, the region and the bucket's policy";
  if (code === "PermanentRedirect" || status === 301) {
    return "the bucket is in another region: set the region";
  }
  return undefined;
}

function statusCode(status: number): string {
  const names: Record<number, string> = {
    304: "NotModified",
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    412: "PreconditionFailed",
  };
  return names[status] ?? (status >= 500 ? "ServerError" : `HTTP${status}`);
}

function readObject(response: HttpResponse, range: ByteRange | undefined): S3Object {
  const { body, size } = rangedBody(response, range);
  return {
    status: "ok",
    body,
    size,
    etag: response.headers.get("etag") ?? "",
    lastModified: parseHttpDate(response.headers.get("last-modified")),
    contentType: response.headers.get("content-type") ?? undefined,
  };
}

async function toBytes(body: PutBody, key: string): Promise<Uint8Array> {
  if (body instanceof Uint8Array) return body;
  if (typeof body === "string") return new TextEncoder().encode(body);
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const part of body) {
    total += part.length;
    if (total > MAX_PUT_BYTES) {
      throw new RangeError(`Cannot put "${key}": the body is larger than S3's 5 GiB limit for one PUT`);
    }
    parts.push(part);
  }
  return concatBytes(parts);
}
