/**
 * The server's limits and the checks that enforce them, each with its documented code: a body past
 * `maxBodyBytes` is `PAYLOAD_TOO_LARGE` (413) before it is read whole; SQL past `maxSqlLength` is
 * `SQL_TOO_LONG`; a statement returning more than `maxRows` rows, or results past `maxResultBytes` in one
 * response, is `RESULT_TOO_LARGE`; a body that takes longer than `bodyTimeoutMs` to arrive is
 * `REQUEST_TIMEOUT` (408). Concurrency (`maxConcurrentRequests`: `TOO_MANY_REQUESTS`, 429) is
 * counted by the app, streams by the stream table, and the time limit of one statement by the replica's
 * engine (`queryTimeoutMs`, `SQLITE_INTERRUPT`).
 *
 * @module
 */

import { concatBytes } from "../bytes.ts";
import { ServerError } from "./errors.ts";

/** What the server allows one request. */
export interface ServerLimits {
  /** Largest request body. @default {1048576} */
  maxBodyBytes: number;
  /** Longest SQL text, in characters. @default {100000} */
  maxSqlLength: number;
  /** Most rows one statement may return. @default {10000} */
  maxRows: number;
  /** Most bytes of results in one response. @default {16777216} */
  maxResultBytes: number;
  /** Most SQL texts one Hrana stream may store. @default {1000} */
  maxStoredSql: number;
  /** Most requests answered at once (health and metrics excepted). @default {64} */
  maxConcurrentRequests: number;
  /** Longest a request's body may take to arrive, in ms. @default {10000} */
  bodyTimeoutMs: number;
}

/** The limits when a config says nothing. */
export const DEFAULT_LIMITS: Readonly<ServerLimits> = {
  maxBodyBytes: 1 << 20,
  maxSqlLength: 100_000,
  maxRows: 10_000,
  maxResultBytes: 16 << 20,
  maxStoredSql: 1000,
  maxConcurrentRequests: 64,
  bodyTimeoutMs: 10_000,
};

/** Throws `SQL_TOO_LONG` when `sql` is longer than the limit. */
export function checkSqlLength(sql: string, limits: Pick<ServerLimits, "maxSqlLength">): void {
  if (sql.length > limits.maxSqlLength) {
    throw new ServerError(
      400,
      "SQL_TOO_LONG",
      `The SQL text is ${sql.length} characters long, more than the limit of ${limits.maxSqlLength}`,
    );
  }
}

/** Throws `RESULT_TOO_LARGE` when a statement returned more rows than the limit. */
export function checkRows(rows: number, limits: Pick<ServerLimits, "maxRows">): void {
  if (rows > limits.maxRows) {
    throw new ServerError(
      400,
      "RESULT_TOO_LARGE",
      `The statement returned ${rows} rows, more than the limit of ${limits.maxRows} rows: add a LIMIT, or page ` +
        "with a WHERE on the key",
    );
  }
}

/** The `RESULT_TOO_LARGE` error for results past `maxResultBytes`. */
export function resultTooLarge(limits: Pick<ServerLimits, "maxResultBytes">): ServerError {
  return new ServerError(
    400,
    "RESULT_TOO_LARGE",
    `The results of this request pass the limit of ${limits.maxResultBytes} bytes: ask for fewer rows or columns`,
  );
}

/**
 * Reads a request's JSON body, refusing more than `maxBytes` (`PAYLOAD_TOO_LARGE`), a body that takes longer
 * than `timeoutMs` to arrive (`REQUEST_TIMEOUT`, 408) and text that is not JSON. When `signal` aborts (the
 * server is stopping) the read ends at once with `SHUTTING_DOWN`.
 */
export async function readJsonBody(
  request: Request,
  maxBytes: number,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<unknown> {
  const tooLarge = () =>
    new ServerError(
      413,
      "PAYLOAD_TOO_LARGE",
      `The request body is larger than the limit of ${maxBytes} bytes`,
    );
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) throw tooLarge();
  const reading = declared !== null && /^\d+$/.test(declared)
    // A declared length within the limit: the runtime ends a body that runs past it, so read it at once.
    ? request.arrayBuffer().then((buffer) => new Uint8Array(buffer))
    : readStream(request, maxBytes, tooLarge);
  const bytes = await withinTime(reading, request, options);
  if (bytes.length > maxBytes) throw tooLarge();
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new ServerError(400, "BAD_REQUEST", "The request body is not UTF-8 text");
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ServerError(400, "BAD_REQUEST", `The request body is not JSON: ${(error as Error).message}`);
  }
}

/** `reading`, unless the body takes longer than the timeout or the server stops first. */
function withinTime<T>(
  reading: Promise<T>,
  request: Request,
  options: { timeoutMs?: number; signal?: AbortSignal },
): Promise<T> {
  const { timeoutMs, signal } = options;
  if (timeoutMs === undefined && signal === undefined) return reading;
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = (error: ServerError) => {
      done();
      request.body?.cancel().catch(() => {});
      reject(error);
    };
    const onAbort = () => stop(new ServerError(503, "SHUTTING_DOWN", "The server is shutting down"));
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    if (timeoutMs !== undefined) {
      timer = setTimeout(
        () =>
          stop(
            new ServerError(
              408,
              "REQUEST_TIMEOUT",
              `The request body took longer than ${timeoutMs} ms to arrive: send it whole, at once`,
            ),
          ),
        timeoutMs,
      );
    }
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort);
    reading.then((value) => {
      done();
      resolve(value);
    }, (error) => {
      done();
      reject(error);
    });
  });
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** Reads a body of undeclared length, refusing more than `maxBytes` as it arrives. */
async function readStream(request: Request, maxBytes: number, tooLarge: () => Error): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      parts.push(value);
    }
  }
  return concatBytes(parts);
}
