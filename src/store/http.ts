/**
 * A read-only store over plain HTTP: a static file server or CDN serving the same key layout, or a public
 * bucket's website. It reads with GET and HEAD, ranges and conditional GETs; it cannot list or write.
 *
 * @module
 */

import { TesseraError } from "../errors.ts";
import { resolveRetryPolicy, type RetryPolicy } from "../net/backoff.ts";
import { describeUrl, type HttpResponse, isRetriableStatus, sendWithRetries } from "../net/http.ts";
import { encodeKey } from "../s3/endpoint.ts";
import { checkKey, checkPrefix } from "./keys.ts";
import { checkRange, parseHttpDate, rangedBody, rangeHeader } from "../net/range.ts";
import type { BlobStore, GetOptions, GetResult, HeadResult, ListItem, StoreCallOptions } from "./types.ts";

/** Options of {@linkcode HttpStore}. */
export interface HttpStoreOptions extends Partial<RetryPolicy> {
  /** Headers sent with every request, such as `authorization`; never shown in errors. */
  headers?: Record<string, string> | undefined;
  /** The fetch to use. @default {globalThis.fetch} */
  fetch?: typeof fetch | undefined;
}

/**
 * A read-only {@linkcode BlobStore} at a base URL: key `a/b` is read from `<base>/a/b`. A query in the base
 * URL (a CDN's signed token, `?sig=…`) is sent with every request, after the key (`<base>/a/b?sig=…`), and
 * never shown in errors or the description. A fragment is refused.
 *
 * @example
 * ```ts
 * import { HttpStore } from "./http.ts";
 * const store = new HttpStore("https://cdn.example.com/backups");
 * console.log(store.capabilities.write); // false
 * ```
 */
export class HttpStore implements BlobStore {
  /** The base URL, without a trailing slash or its query (which may hold a token, so is never shown). */
  readonly url: string;
  readonly description: string;
  readonly capabilities = Object.freeze({ write: false, list: false, conditionalPut: false });
  /** The base URL's query (`?…` or empty), sent with every request after the key. */
  readonly #query: string;
  readonly #headers: Record<string, string>;
  readonly #policy: RetryPolicy;
  readonly #fetch: typeof fetch | undefined;

  constructor(baseUrl: string, options: HttpStoreOptions = {}) {
    const shown = describeUrl(baseUrl);
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      throw new TypeError(`Cannot open an HTTP store at "${shown}": expected an http or https URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`Cannot open an HTTP store at "${shown}": expected an http or https URL`);
    }
    if (url.username || url.password) {
      throw new TypeError("Cannot open an HTTP store with credentials in its URL: pass them in `headers`");
    }
    if (baseUrl.includes("#")) {
      throw new TypeError(
        `Cannot open an HTTP store at "${shown.split("#")[0]}": its URL has a fragment ("#…"), which is ` +
          "never sent to the server; remove it",
      );
    }
    this.url = `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
    this.description = this.url;
    this.#query = url.search;
    this.#headers = { ...options.headers };
    this.#policy = resolveRetryPolicy(options);
    this.#fetch = options.fetch;
  }

  async get(key: string, options: GetOptions = {}): Promise<GetResult> {
    checkKey(key);
    checkRange(options.range);
    const headers: Record<string, string> = {};
    const { range } = options;
    if (range?.length === 0) {
      const info = await this.head(key, options);
      return info.status === "ok" ? { ...info, body: new Uint8Array(0) } : info;
    }
    if (range) headers.range = rangeHeader(range);
    if (options.ifNoneMatch !== undefined) headers["if-none-match"] = options.ifNoneMatch;
    const response = await this.#send("GET", key, headers, options.signal, [304, 404, 410, 416]);
    if (response.status === 404 || response.status === 410) return { status: "not_found" };
    const etag = response.headers.get("etag") ?? "";
    if (response.status === 304) return { status: "not_modified", etag: options.ifNoneMatch ?? etag };
    if (response.status === 416) {
      const info = await this.head(key, options);
      return info.status === "ok" ? { ...info, body: new Uint8Array(0) } : info;
    }
    const { body, size } = rangedBody(response, range);
    return {
      status: "ok",
      body,
      key,
      size,
      etag,
      lastModified: parseHttpDate(response.headers.get("last-modified")),
    };
  }

  async head(key: string, options: StoreCallOptions = {}): Promise<HeadResult> {
    checkKey(key);
    const response = await this.#send("HEAD", key, {}, options.signal, [404, 410]);
    if (response.status === 404 || response.status === 410) return { status: "not_found" };
    return {
      status: "ok",
      key,
      size: Number(response.headers.get("content-length") ?? 0),
      etag: response.headers.get("etag") ?? "",
      lastModified: parseHttpDate(response.headers.get("last-modified")),
    };
  }

  put(key: string): Promise<{ etag: string }> {
    return Promise.reject(this.#readOnly("put", key));
  }

  delete(key: string): Promise<void> {
    return Promise.reject(this.#readOnly("delete", key));
  }

  // deno-lint-ignore require-yield
  async *list(prefix: string): AsyncGenerator<ListItem> {
    checkPrefix(prefix);
    throw new TesseraError(
      "UNSUPPORTED",
      `Cannot list "${prefix}" at ${this.description}: a plain HTTP server cannot list; ` +
        "list through the S3 or directory store it serves",
    );
  }

  async #send(
    method: string,
    key: string,
    extra: Record<string, string>,
    signal: AbortSignal | undefined,
    accept: readonly number[],
  ): Promise<HttpResponse> {
    const url = `${this.url}/${encodeKey(key)}${this.#query}`;
    const outcome = await sendWithRetries(
      () => ({ method, url, headers: new Headers({ ...this.#headers, ...extra }) }),
      { policy: this.#policy, signal, fetch: this.#fetch, shouldRetry: (r) => isRetriableStatus(r.status) },
    );
    const tries = `${outcome.attempts} ${outcome.attempts === 1 ? "attempt" : "attempts"}`;
    if (!outcome.ok) {
      const { message, cause } = outcome.failure;
      throw new TesseraError(
        "HTTP_REQUEST_FAILED",
        `HTTP ${method} of "${describeUrl(url)}" failed after ${tries}: ${this.#hideQuery(message)}`,
        { cause: this.#query ? this.#hideQuery(cause) : cause },
      );
    }
    const { status } = outcome.response;
    if ((status >= 200 && status < 300) || accept.includes(status)) return outcome.response;
    const hint = status === 401 || status === 403 ? "; check the store's access headers" : "";
    throw new TesseraError(
      "HTTP_REQUEST_FAILED",
      `HTTP ${method} of "${describeUrl(url)}" failed after ${tries}: status ${status}${hint}`,
    );
  }

  /**
   * `value` (a message, or an error and its causes, copied) without the base URL's query: runtimes quote
   * the URL they failed to fetch (Deno: "error sending request for url (…?sig=…)").
   */
  #hideQuery<T>(value: T): T {
    if (!this.#query) return value;
    if (typeof value === "string") {
      const base = this.url.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      const quoted = new RegExp(`(${base}[^\\s?"')]*)\\?[^\\s"')]*`, "g");
      return value.replace(quoted, "$1").replaceAll(this.#query.slice(1), "…") as T;
    }
    if (!(value instanceof Error)) return value;
    const copy = new Error(this.#hideQuery(value.message), { cause: this.#hideQuery(value.cause) });
    copy.name = value.name;
    return copy as T;
  }

  #readOnly(action: string, key: string): TesseraError {
    return new TesseraError(
      "READONLY",
      `Cannot ${action} "${key}": the HTTP store at ${this.description} is read-only; write through the ` +
        "S3 or directory store it serves",
    );
  }
}
