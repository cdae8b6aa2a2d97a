/**
 * The store's objects over HTTP, `GET` and `HEAD /v1/objects/<key>`, laid out as in the store, so a replica
 * anywhere (a browser page included) reads them with `new HttpStore("http://host:port/v1/objects")`, and a
 * CDN in front of the server caches them right:
 *
 * - chunks, packs and manifests never change once written: a year's `Cache-Control` with `immutable`;
 * - a database's pointer changes with every publish: `no-cache`, so a poll revalidates with its ETag and an
 *   unchanged pointer costs a 304;
 * - every other key (leases, other databases, anything outside the layout) answers 404 exactly as a missing
 *   object does, with `no-store`, so a CDN never keeps a miss of a key that appears later.
 *
 * Ranges (`bytes=A-B`, `bytes=A-`, `bytes=-N`), `If-None-Match`, `If-Range`, an optional bearer token
 * (auth.ts) and CORS. docs/SERVER.md, "Objects endpoint and static hosting", has the header table.
 *
 * @module
 */

import { sha256Hex } from "../bytes.ts";
import { parseChunkKey, parseManifestKey, parsePackKey, pointerKey } from "../manifest/keys.ts";
import { isDatabaseName as isStoredName } from "../manifest/naming.ts";
import type { BlobStore, Range } from "../store/types.ts";
import { checkTokens, Gate } from "./auth.ts";
import { errorResponse, ServerError } from "./errors.ts";
import type { Metrics } from "./metrics.ts";

/** The path the endpoint answers under: key `a/b` is `${OBJECTS_PATH}/a/b`. */
export const OBJECTS_PATH = "/v1/objects";

/** Options of the objects endpoint (`AppOptions.objects`). */
export interface ObjectsOptions {
  /** The store served: the one the databases were published to. */
  store: BlobStore;
  /**
   * The databases whose pointer and manifests are served, by their names in the store (`tessera sync
   * --name`, or a derived name). Every other database's keys answer 404, as missing keys do. Chunks and packs
   * are served whichever database lists them: their keys are 256-bit hashes of their bytes, so only a reader
   * who has a manifest listing them can name them.
   */
  databases: readonly string[];
  /** Anyone may read, with no token. Give this or `tokens`. @default {false} */
  public?: boolean | undefined;
  /** Bearer tokens, any of which opens every object served. @default {[]} */
  tokens?: readonly string[] | undefined;
  /**
   * The `Access-Control-Allow-Origin` sent: `"*"` or one origin (`https://app.example.com`) whose pages may
   * read the objects.
   * @default {"*" when public; none, so only same-origin pages can read, with tokens}
   */
  corsOrigin?: string | undefined;
}

/** What a served key holds: how it is cached, and how it is counted in `/metrics`. */
export type ObjectKind = "pointer" | "manifest" | "chunk" | "pack";

/** The response headers the endpoint exposes to pages on other origins. */
export const EXPOSED_HEADERS = "ETag, Content-Range, Content-Length, Accept-Ranges, Last-Modified";
const ALLOWED_HEADERS = "Range, If-None-Match, If-Range, Authorization";
const IMMUTABLE = "max-age=31536000, immutable";
// Auth.ts checks tokens per name; the endpoint has one.
const GATE_NAME = "objects";

/** A range asked for: `offset`/`length` (`bytes=A-B`, `bytes=A-`) or the last `suffix` bytes (`bytes=-N`). */
type Asked = { offset: number; length: number | undefined } | { suffix: number };

/**
 * The range of a `Range` header, or `undefined` when there is none or it is not one range of bytes (a
 * server may then answer with the whole object, as RFC 9110 allows). Reads what `rangeHeader`
 * (src/net/range.ts) writes for `HttpStore` and S3.
 *
 * @example Parse the three forms
 * ```ts
 * import { parseRangeHeader } from "./objects.ts";
 * console.log(parseRangeHeader("bytes=10-19"), parseRangeHeader("bytes=10-"), parseRangeHeader("bytes=-5"));
 * // { offset: 10, length: 10 } { offset: 10, length: undefined } { suffix: 5 }
 * ```
 */
export function parseRangeHeader(value: string | null): Asked | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(value?.trim() ?? "");
  if (!match) return undefined;
  const [, first = "", last = ""] = match;
  if (first === "") {
    const suffix = Number(last);
    return last === "" || !Number.isSafeInteger(suffix) ? undefined : { suffix };
  }
  const offset = Number(first);
  const end = last === "" ? undefined : Number(last);
  if (!Number.isSafeInteger(offset) || (end !== undefined && (!Number.isSafeInteger(end) || end < offset))) {
    return undefined;
  }
  return { offset, length: end === undefined ? undefined : end - offset + 1 };
}

/**
 * The entity tags of an `If-None-Match` header, weak ones as their strong form (it compares weakly).
 *
 * @example Parse a list
 * ```ts
 * import { parseEntityTags } from "./objects.ts";
 * console.log(parseEntityTags('"a", W/"b"')); // [ '"a"', '"b"' ]
 * ```
 */
export function parseEntityTags(value: string | null): string[] {
  return [...(value ?? "").matchAll(/\*|(?:W\/)?"[^"]*"/g)].map(([tag]) => tag.replace(/^W\//, ""));
}

// A strong entity tag as the store gave it (quoted, or a bare token to quote), else undefined.
function strongTag(etag: string): string | undefined {
  if (/^"[\x21\x23-\x7e]*"$/.test(etag)) return etag;
  if (/^[\x21\x23-\x7e]+$/.test(etag) && !etag.startsWith("W/")) return `"${etag}"`;
  return undefined;
}

function matches(tags: readonly string[], etag: string): boolean {
  return tags.some((tag) => tag === "*" || tag === etag);
}

/** The store's objects over HTTP; `createApp` routes `OBJECTS_PATH` here. */
export class ObjectEndpoint {
  readonly #store: BlobStore;
  readonly #databases: ReadonlySet<string>;
  readonly #pointers: ReadonlySet<string>;
  readonly #gate: Promise<Gate> | undefined;
  readonly #scope: "public" | "private";
  readonly #cors: Record<string, string>;
  readonly #metrics: Metrics;

  /** Checks `options` (`TypeError` for a bad one) and counts requests into `metrics`. */
  constructor(options: ObjectsOptions, metrics: Metrics) {
    const tokens = options.tokens ?? [];
    const isPublic = options.public ?? false;
    if (isPublic === (tokens.length > 0)) {
      throw new TypeError(
        isPublic
          ? "Cannot serve the store's objects both public and with tokens: give one"
          : "Cannot serve the store's objects: give tokens, or public: true to serve them to anyone",
      );
    }
    checkTokens("the objects endpoint", tokens);
    for (const name of options.databases) {
      if (!isStoredName(name)) {
        throw new TypeError(
          `Cannot serve the objects of database ${JSON.stringify(name)}: it is not a name a store gives ` +
            "a database (a chosen or derived name)",
        );
      }
    }
    const origin = options.corsOrigin ?? (isPublic ? "*" : undefined);
    if (origin !== undefined && !isCorsOrigin(origin)) {
      throw new TypeError(
        `Cannot serve the store's objects to pages of ${JSON.stringify(origin)}: expected "*" or an ` +
          'origin such as "https://app.example.com" (scheme, host and port; no path)',
      );
    }
    this.#store = options.store;
    this.#databases = new Set(options.databases);
    this.#pointers = new Set(options.databases.map(pointerKey));
    this.#gate = isPublic ? undefined : Gate.create(new Map([[GATE_NAME, { public: false, tokens }]]));
    this.#scope = isPublic ? "public" : "private";
    this.#cors = origin === undefined
      ? {}
      : { "access-control-allow-origin": origin, "access-control-expose-headers": EXPOSED_HEADERS };
    this.#metrics = metrics;
  }

  /** The CORS headers every answer carries (none without an allowed origin). */
  get corsHeaders(): Readonly<Record<string, string>> {
    return this.#cors;
  }

  /** What `key` holds, or `undefined` when the endpoint does not serve it. */
  kind(key: string): ObjectKind | undefined {
    if (parseChunkKey(key)) return "chunk";
    if (parsePackKey(key)) return "pack";
    const manifest = parseManifestKey(key);
    if (manifest && this.#databases.has(manifest.name)) return "manifest";
    if (this.#pointers.has(key)) return "pointer";
    return undefined;
  }

  /** The answer to an `OPTIONS` preflight of a page on another origin. */
  preflight(): Response {
    const headers: Record<string, string> = { "cache-control": "no-store" };
    if (this.#cors["access-control-allow-origin"] !== undefined) {
      Object.assign(headers, this.#cors, {
        "access-control-allow-methods": "GET, HEAD",
        "access-control-allow-headers": ALLOWED_HEADERS,
        "access-control-max-age": "86400",
      });
    }
    return new Response(null, { status: 204, headers });
  }

  /** Answers a `GET` or `HEAD` of `${OBJECTS_PATH}/<key>`. */
  async answer(request: Request): Promise<Response> {
    const key = keyOf(new URL(request.url).pathname);
    const kind = key === undefined ? undefined : this.kind(key);
    let response: Response;
    try {
      if (this.#gate !== undefined) {
        await (await this.#gate).check(request.headers.get("authorization"), GATE_NAME);
      }
      response = kind === undefined ? this.#missing() : await this.#read(request, key!, kind);
    } catch (error) {
      response = this.#refusal(error);
    }
    const sent = request.method === "GET" && (response.status === 200 || response.status === 206);
    const bytes = sent ? Number(response.headers.get("content-length")) : 0;
    this.#metrics.observeObject(kind ?? "other", response.status, bytes);
    return response;
  }

  async #read(request: Request, key: string, kind: ObjectKind): Promise<Response> {
    const tags = parseEntityTags(request.headers.get("if-none-match"));
    if (request.method === "HEAD") {
      const info = await this.#store.head(key);
      if (info.status === "not_found") return this.#missing();
      const etag = strongTag(info.etag) ?? await this.#derivedTag(key);
      if (etag === undefined) return this.#missing();
      if (matches(tags, etag)) return this.#notModified(kind, etag, info.lastModified);
      return this.#object(kind, 200, etag, info.lastModified, { "content-length": String(info.size) });
    }
    let range: Range | undefined;
    const asked = parseRangeHeader(request.headers.get("range"));
    if (asked !== undefined && "suffix" in asked) {
      const info = await this.#store.head(key);
      if (info.status === "not_found") return this.#missing();
      if (asked.suffix === 0 || info.size === 0) return this.#unsatisfiable(info.size);
      range = { offset: Math.max(0, info.size - asked.suffix) };
    } else if (asked !== undefined) {
      range = { offset: asked.offset, length: asked.length };
    }
    // One strong tag asked for is the store's own when it matches: the store answers not_modified itself.
    const only = tags.length === 1 && tags[0] !== "*" ? tags[0] : undefined;
    let got = await this.#store.get(key, { range, ifNoneMatch: only });
    if (got.status === "not_found") return this.#missing();
    if (got.status === "not_modified") return this.#notModified(kind, got.etag, undefined);
    let etag = strongTag(got.etag) ??
      (range === undefined ? `"${await sha256Hex(got.body)}"` : await this.#derivedTag(key));
    if (etag === undefined) return this.#missing();
    if (matches(tags, etag)) return this.#notModified(kind, etag, got.lastModified);
    const ifRange = request.headers.get("if-range");
    if (range !== undefined && ifRange !== null && ifRange !== etag) {
      // The copy the client holds part of is not this one (or it named it by date): the whole object.
      range = undefined;
      got = await this.#store.get(key);
      if (got.status !== "ok") return this.#missing();
      etag = strongTag(got.etag) ?? `"${await sha256Hex(got.body)}"`;
    }
    const { body, size, lastModified } = got;
    if (range === undefined) {
      return this.#object(kind, 200, etag, lastModified, { "content-length": String(body.length) }, body);
    }
    if (range.offset >= size) return this.#unsatisfiable(size);
    const last = range.offset + body.length - 1;
    return this.#object(kind, 206, etag, lastModified, {
      "content-length": String(body.length),
      "content-range": `bytes ${range.offset}-${last}/${size}`,
    }, body);
  }

  // A strong tag made of the bytes, for stores whose own tag is weak or missing: read whole, hashed.
  async #derivedTag(key: string): Promise<string | undefined> {
    const got = await this.#store.get(key);
    return got.status === "ok" ? `"${await sha256Hex(got.body)}"` : undefined;
  }

  #cacheControl(kind: ObjectKind): string {
    if (kind !== "pointer") return `${this.#scope}, ${IMMUTABLE}`;
    return this.#scope === "public" ? "no-cache" : "private, no-cache";
  }

  #object(
    kind: ObjectKind,
    status: 200 | 206,
    etag: string,
    lastModified: Date | undefined,
    extra: Record<string, string>,
    body: Uint8Array | null = null,
  ): Response {
    const headers: Record<string, string> = {
      "content-type": "application/octet-stream",
      "cache-control": this.#cacheControl(kind),
      "accept-ranges": "bytes",
      etag,
      ...extra,
      ...this.#cors,
    };
    if (lastModified !== undefined) headers["last-modified"] = lastModified.toUTCString();
    return new Response(body as Uint8Array<ArrayBuffer> | null, { status, headers });
  }

  #notModified(kind: ObjectKind, etag: string, lastModified: Date | undefined): Response {
    const headers: Record<string, string> = {
      "cache-control": this.#cacheControl(kind),
      etag,
      ...this.#cors,
    };
    if (lastModified !== undefined) headers["last-modified"] = lastModified.toUTCString();
    return new Response(null, { status: 304, headers });
  }

  #unsatisfiable(size: number): Response {
    return new Response(null, {
      status: 416,
      headers: { "content-range": `bytes */${size}`, "cache-control": "no-store", ...this.#cors },
    });
  }

  // Missing, refused and malformed keys all answer this, so no answer tells one from another.
  #missing(): Response {
    return errorResponse(new ServerError(404, "NOT_FOUND", "No such object"), {
      "cache-control": "no-store",
      ...this.#cors,
    });
  }

  #refusal(error: unknown): Response {
    const headers: Record<string, string> = { "cache-control": "no-store", ...this.#cors };
    if (error instanceof ServerError) {
      if (error.status === 401) headers["www-authenticate"] = "Bearer";
      return errorResponse(error, headers);
    }
    // The store's own message names its URL and the key: not for callers. A retry may find it back.
    headers["retry-after"] = "1";
    return errorResponse(
      new ServerError(503, "UNAVAILABLE", "The store could not be read: retry shortly"),
      headers,
    );
  }
}

/** The key a request path names under `OBJECTS_PATH`, percent-decoded; `undefined` when it names none. */
function keyOf(pathname: string): string | undefined {
  const prefix = `${OBJECTS_PATH}/`;
  if (!pathname.startsWith(prefix)) return undefined;
  try {
    return decodeURIComponent(pathname.slice(prefix.length));
  } catch {
    return undefined;
  }
}

/**
 * Whether `value` can be `ObjectsOptions.corsOrigin`: `"*"`, or an http(s) origin exactly as a browser
 * sends it (scheme, host and port when not the default; no path, no trailing slash).
 *
 * @example
 * ```ts
 * import { isCorsOrigin } from "./objects.ts";
 * console.log(isCorsOrigin("https://app.example.com"), isCorsOrigin("https://app.example.com/")); // true false
 * ```
 */
export function isCorsOrigin(value: string): boolean {
  if (value === "*") return true;
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.origin === value;
  } catch {
    return false;
  }
}
