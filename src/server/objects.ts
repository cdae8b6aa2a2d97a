/**
 * The store's objects over HTTP, `GET` and `HEAD /v1/objects/<key>`, laid out as in the store, so a replica
 * anywhere (a browser page included) reads them with `new HttpStore("http://host:port/v1/objects")`, and a
 * CDN in front of the server caches them right:
 *
 * - chunks, packs and manifests never change once written: a year's `Cache-Control` with `immutable`;
 * - a database's pointer changes with every publish: `no-cache`, so a poll revalidates with its ETag and an
 *   unchanged pointer costs a 304;
 * - every other key (leases, other databases, anything outside the layout), and every other spelling of a
 *   key's path, answers 404 exactly as a missing object does, with `no-store`, so a CDN never keeps a miss
 *   of a key that appears later.
 *
 * Ranges (`bytes=A-B`, `bytes=A-`, `bytes=-N`), `If-None-Match`, `If-Range`, an optional bearer token
 * (auth.ts), CORS, and a budget of bytes waiting for slow readers. docs/SERVER.md, "Objects endpoint and
 * static hosting", has the header table.
 *
 * @module
 */

import { errorMessage } from "../errors.ts";
import { sha256Hex } from "../bytes.ts";
import { parseChunkKey, parseManifestKey, parsePackKey, pointerKey } from "../manifest/keys.ts";
import { isDatabaseName as isStoredName } from "../manifest/naming.ts";
import { parseEntityTags, strongTag, tagsMatch } from "../net/etag.ts";
import { askedBounds, parseRangeHeader } from "../net/range.ts";
import { encodeKey } from "../s3/endpoint.ts";
import type { BlobInfo, BlobStore, Range } from "../store/types.ts";
import { checkTokens, Gate } from "./auth.ts";
import { errorResponse, ServerError } from "./errors.ts";
import type { Metrics } from "./metrics.ts";

/** The path the endpoint answers under: key `a/b` is `${OBJECTS_PATH}/a/b`. */
export const OBJECTS_PATH = "/v1/objects";

/** The default of `ObjectsOptions.maxBufferedBytes`: 256 MiB. */
export const DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024 * 1024;

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
   * read the objects. It says which pages may read an answer, not who may ask: it is no access control.
   * @default {"*" when public; none, so only same-origin pages can read, with tokens}
   */
  corsOrigin?: string | undefined;
  /**
   * The most bytes of object bodies held in memory for clients that have not read them yet. A body counts
   * from when it is read from the store until the client has taken it all, or went away; an answer that
   * would pass the budget is `503 UNAVAILABLE` (one object is always sent when nothing else waits).
   * @default {268435456 (256 MiB)}
   */
  maxBufferedBytes?: number | undefined;
}

/** What a served key holds: how it is cached, and how it is counted in `/metrics`. */
export type ObjectKind = "pointer" | "manifest" | "chunk" | "pack";

/** The response headers the endpoint exposes to pages on other origins. */
export const EXPOSED_HEADERS = "ETag, Content-Range, Content-Length, Accept-Ranges, Last-Modified";
const ALLOWED_HEADERS = "Range, If-None-Match, If-Range, Authorization";
const ALLOWED_METHODS = "GET, HEAD, OPTIONS";
const IMMUTABLE = "max-age=31536000, immutable";
// Auth.ts checks tokens per name; the endpoint has one.
const GATE_NAME = "objects";
// Bodies go out in pieces, each handed over only when the runtime asks for more (once it has written the
// last): a body is done when its client has taken nearly all of it, not when the runtime queued it.
const PIECE_BYTES = 64 * 1024;
// Manifests' tags made of their bytes, kept so that a HEAD or a revalidation reads nothing.
const MANIFEST_TAGS = 4096;
// What a body is taken to need before it is read, so that a full budget refuses before reading: writers fill
// a pack to about 8 MiB (PACK_TARGET_BYTES) and a chunk object holds at most 1 MiB; the rest are small.
const EXPECTED_BYTES: Record<ObjectKind, number> = {
  pack: 9 * 1024 * 1024,
  chunk: 1024 * 1024 + 64,
  manifest: 1024 * 1024,
  pointer: 4096,
};
/** The store's objects over HTTP; `createApp` routes `OBJECTS_PATH` here. */
export class ObjectEndpoint {
  readonly #store: BlobStore;
  readonly #databases: ReadonlySet<string>;
  readonly #pointers: ReadonlySet<string>;
  readonly #gate: Promise<Gate> | undefined;
  readonly #scope: "public" | "private";
  readonly #cors: Record<string, string>;
  readonly #metrics: Metrics;
  readonly #maxBuffered: number;
  readonly #manifestTags = new Map<string, string>();
  #buffered = 0;

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
    const maxBuffered = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    if (!Number.isSafeInteger(maxBuffered) || maxBuffered < 1) {
      throw new TypeError(
        `Cannot serve the store's objects with maxBufferedBytes ${maxBuffered}: expected a whole number of ` +
          "bytes from 1",
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
    this.#maxBuffered = maxBuffered;
  }

  /** The CORS headers every answer carries (none without an allowed origin). */
  get corsHeaders(): Readonly<Record<string, string>> {
    return this.#cors;
  }

  /** Bytes of object bodies read from the store and not yet taken by their clients. */
  get bufferedBytes(): number {
    return this.#buffered;
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

  /** Answers any request of `OBJECTS_PATH` or under it: `GET`, `HEAD`, `OPTIONS`, and 405 to the rest. */
  handle(request: Request): Promise<Response> | Response {
    return request.method === "OPTIONS" ? this.preflight() : this.answer(request);
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

  /** Answers a request of `${OBJECTS_PATH}/<key>`: `GET` and `HEAD`, and 405 to any other method. */
  async answer(request: Request): Promise<Response> {
    const key = keyOf(request.url);
    const kind = key === undefined ? undefined : this.kind(key);
    let response: Response;
    try {
      if (request.method !== "GET" && request.method !== "HEAD") {
        response = this.#error(
          new ServerError(
            405,
            "METHOD_NOT_ALLOWED",
            `The objects endpoint answers ${ALLOWED_METHODS}, not ${request.method}`,
          ),
          { allow: ALLOWED_METHODS },
        );
      } else {
        if (this.#gate !== undefined) {
          await (await this.#gate).check(request.headers.get("authorization"), GATE_NAME);
        }
        response = kind === undefined ? this.#missing() : await this.#read(request, key!, kind);
      }
    } catch (error) {
      response = this.#refusal(error, kind);
    }
    this.#metrics.observeObject(kind ?? "other", response.status);
    return response;
  }

  async #read(request: Request, key: string, kind: ObjectKind): Promise<Response> {
    const isHead = request.method === "HEAD";
    const tags = parseEntityTags(request.headers.get("if-none-match"));
    let etag = this.#fixedTag(key, kind);
    let size: number | undefined;
    if (isHead || tags.length > 0) {
      // What the store knows without reading the object answers a HEAD, and a revalidation that matches.
      const info = await this.#store.head(key);
      if (info.status === "not_found") return this.#missing();
      const known = etag ?? (kind === "pointer" ? strongTag(info.etag) : undefined);
      if (known !== undefined && tagsMatch(tags, known)) {
        return this.#notModified(kind, known, info.lastModified);
      }
      if (known !== undefined && isHead) return this.#object(kind, 200, known, info, info.size, null);
      size = info.size;
    }
    const asked = parseRangeHeader(request.headers.get("range"));
    const ifRange = request.headers.get("if-range");
    if (etag === undefined) {
      // A pointer, which may change between two reads (so one read decides everything), or an object whose
      // tag is made of its bytes: read whole, once.
      const held = this.#reserve(size ?? EXPECTED_BYTES[kind]);
      if (held === undefined) return this.#busy();
      try {
        const got = await this.#store.get(key);
        if (got.status !== "ok") return this.#missing();
        etag = (kind === "pointer" ? strongTag(got.etag) : undefined) ?? `"${await sha256Hex(got.body)}"`;
        if (kind === "manifest") this.#remember(key, etag);
        if (tagsMatch(tags, etag)) return this.#notModified(kind, etag, got.lastModified);
        if (isHead) return this.#object(kind, 200, etag, got, got.size, null);
        // The copy the client holds part of is not this one (or it named it by date): the whole object.
        const wanted = ifRange === null || ifRange === etag ? asked : undefined;
        const part = wanted === undefined ? [0, got.size] : askedBounds(wanted, got.size);
        if (part === undefined) return this.#unsatisfiable(got.size);
        const body = wanted === undefined ? got.body : got.body.slice(part[0], part[1]);
        return this.#send(kind, etag, got, wanted === undefined ? undefined : part[0], body, held);
      } finally {
        this.#release(held);
      }
    }
    // A chunk, a pack, or a manifest whose tag is known: only the bytes sent are read.
    const wanted = ifRange === null || ifRange === etag ? asked : undefined;
    let range: Range | undefined;
    if (wanted !== undefined && "suffix" in wanted) {
      if (size === undefined) {
        const info = await this.#store.head(key);
        if (info.status === "not_found") return this.#missing();
        size = info.size;
      }
      const part = askedBounds(wanted, size);
      if (part === undefined) return this.#unsatisfiable(size);
      range = { offset: part[0] };
      size = part[1] - part[0];
    } else if (wanted !== undefined) {
      range = { offset: wanted.offset, length: wanted.length };
      size = Math.min(size ?? Infinity, wanted.length ?? Infinity);
    }
    const held = this.#reserve(Math.min(size ?? Infinity, EXPECTED_BYTES[kind]));
    if (held === undefined) return this.#busy();
    try {
      const got = await this.#store.get(key, { range });
      if (got.status !== "ok") return this.#missing();
      if (range !== undefined && range.offset >= got.size) return this.#unsatisfiable(got.size);
      return this.#send(kind, etag, got, range?.offset, got.body, held);
    } finally {
      this.#release(held);
    }
  }

  // A tag that needs no read: a chunk's or a pack's id (a pack's is the SHA-256 of its bytes, a chunk's of
  // the bytes it decodes to; neither key is ever rewritten), or a manifest's tag made before.
  #fixedTag(key: string, kind: ObjectKind): string | undefined {
    if (kind === "chunk" || kind === "pack") return `"${key.slice(key.lastIndexOf("/") + 1)}"`;
    return kind === "manifest" ? this.#manifestTags.get(key) : undefined;
  }

  #remember(key: string, etag: string): void {
    if (this.#manifestTags.size >= MANIFEST_TAGS) {
      this.#manifestTags.delete(this.#manifestTags.keys().next().value!);
    }
    this.#manifestTags.set(key, etag);
  }

  /**
   * Room for a body of about `bytes` before it is read, or `undefined` when there is none: the bytes then
   * count against the budget until `#release` (or `#send`, which holds them until the client took them).
   */
  #reserve(bytes: number): { bytes: number } | undefined {
    if (this.#buffered > 0 && this.#buffered + bytes > this.#maxBuffered) return undefined;
    this.#hold(bytes);
    return { bytes };
  }

  #release(held: { bytes: number }): void {
    this.#hold(-held.bytes);
    held.bytes = 0;
  }

  // A 200 or 206 of `body`, whose bytes count against the budget until its client has taken them all, or
  // went away.
  #send(
    kind: ObjectKind,
    etag: string,
    info: BlobInfo,
    start: number | undefined,
    body: Uint8Array,
    held: { bytes: number },
  ): Response {
    const size = body.length;
    this.#hold(size - held.bytes);
    held.bytes = 0;
    let sent = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      this.#hold(-size);
      this.#metrics.sentObjectBytes(kind, sent);
    };
    const stream = new ReadableStream<Uint8Array>({
      pull: (controller) => {
        const piece = body.subarray(sent, sent + PIECE_BYTES);
        sent += piece.length;
        if (piece.length > 0) controller.enqueue(piece);
        if (sent >= size) {
          controller.close();
          finish();
        }
      },
      cancel: finish,
    }, { highWaterMark: 0 });
    if (start === undefined) return this.#object(kind, 200, etag, info, size, stream);
    return this.#object(kind, 206, etag, info, size, stream, {
      "content-range": `bytes ${start}-${start + size - 1}/${info.size}`,
    });
  }

  #hold(bytes: number): void {
    this.#buffered += bytes;
    this.#metrics.objectsBuffered(this.#buffered);
  }

  #cacheControl(kind: ObjectKind): string {
    if (kind !== "pointer") return `${this.#scope}, ${IMMUTABLE}`;
    return this.#scope === "public" ? "no-cache" : "private, no-cache";
  }

  #object(
    kind: ObjectKind,
    status: 200 | 206,
    etag: string,
    info: BlobInfo,
    length: number,
    body: ReadableStream<Uint8Array> | null,
    extra: Record<string, string> = {},
  ): Response {
    const headers: Record<string, string> = {
      "content-type": "application/octet-stream",
      "cache-control": this.#cacheControl(kind),
      "accept-ranges": "bytes",
      etag,
      "content-length": String(length),
      ...extra,
      ...this.#cors,
    };
    if (info.lastModified !== undefined) headers["last-modified"] = info.lastModified.toUTCString();
    return new Response(body, { status, headers });
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

  // Missing, refused and malformed keys, and other spellings of a key, all answer this, so no answer tells
  // one from another.
  #missing(): Response {
    return this.#error(new ServerError(404, "NOT_FOUND", "No such object"));
  }

  #busy(): Response {
    this.#metrics.objectBufferRefused();
    return this.#error(
      new ServerError(
        503,
        "UNAVAILABLE",
        "The server holds as many bytes of objects as it may for clients still reading them: retry shortly",
      ),
      { "retry-after": "1" },
    );
  }

  // Every refusal carries its length, so a HEAD's answer has the headers of the GET's.
  #error(error: ServerError, extra: Record<string, string> = {}): Response {
    const text = JSON.stringify({ message: error.message, code: error.code });
    return errorResponse(error, {
      "cache-control": "no-store",
      "content-length": String(new TextEncoder().encode(text).length),
      ...extra,
      ...this.#cors,
    });
  }

  #refusal(error: unknown, kind: ObjectKind | undefined): Response {
    if (error instanceof ServerError) {
      return this.#error(error, error.status === 401 ? { "www-authenticate": "Bearer" } : {});
    }
    // The store's own message stays in the server's log: it may name the store's URL.
    console.error(`tessera: /v1/objects could not read a ${kind ?? "key"} from the store: ${logLine(error)}`);
    return this.#error(
      new ServerError(503, "UNAVAILABLE", "The store could not be read: retry shortly"),
      { "retry-after": "1" },
    );
  }
}

// An error's message on one line, with no URL's query or credentials (a presigned URL's signature).
function logLine(error: unknown): string {
  const line = errorMessage(error).split("\n")[0]!.slice(0, 500);
  return line.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/\s"'@]*@/gi, "$1").replace(/\?[^\s"']*/g, "?…");
}

/**
 * The key a request names under `OBJECTS_PATH`, or `undefined` unless its path is exactly the one `HttpStore`
 * builds for that key (`encodeKey`), with no query: every other spelling (dot segments where the runtime
 * passes them on, escapes of `/` or of letters, a `?`) would be another CDN cache key reaching the server.
 */
function keyOf(url: string): string | undefined {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const target = start < 0 ? "" : url.slice(start);
  const prefix = `${OBJECTS_PATH}/`;
  if (!target.startsWith(prefix) || /[?#]/.test(target)) return undefined;
  let key: string;
  try {
    key = decodeURIComponent(target.slice(prefix.length));
  } catch {
    return undefined;
  }
  return target === prefix + encodeKey(key) ? key : undefined;
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
