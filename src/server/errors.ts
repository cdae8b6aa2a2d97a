/**
 * The errors the server answers with: an HTTP status and a machine-readable code, sent as
 * `{"message", "code"}` with `content-type: application/json` exactly, the one shape @libsql/client turns
 * into a `LibsqlError` carrying the code (any other body becomes `SERVER_ERROR` there). docs/SERVER.md lists
 * every code with its status.
 *
 * @module
 */

/** Machine-readable reasons the server refused a request. */
export type ServerErrorCode =
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "BAD_REQUEST"
  | "HRANA_PROTO_ERROR"
  | "BATCH_COND_BAD_STEP"
  | "ARGS_INVALID"
  | "BATON_INVALID"
  | "STREAM_EXPIRED"
  | "PAYLOAD_TOO_LARGE"
  | "REQUEST_TIMEOUT"
  | "SQL_TOO_LONG"
  | "RESULT_TOO_LARGE"
  | "QUERY_TIMEOUT"
  | "TOO_MANY_REQUESTS"
  | "TOO_MANY_STREAMS"
  | "BOOKMARK_NOT_REACHED"
  | "SHUTTING_DOWN"
  | "UNAVAILABLE"
  | "INTERNAL_ERROR";

/** A refusal with its HTTP status. */
export class ServerError extends Error {
  readonly status: number;
  readonly code: ServerErrorCode;

  constructor(status: number, code: ServerErrorCode, message: string) {
    super(message);
    this.name = "ServerError";
    this.status = status;
    this.code = code;
  }
}

/** The JSON response for `error`: its status, `{message, code}`, and extra headers. */
export function errorResponse(error: ServerError, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ message: error.message, code: error.code }), {
    status: error.status,
    headers: { "content-type": "application/json", ...headers },
  });
}
