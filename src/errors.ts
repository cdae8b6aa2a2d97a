/**
 * The one error class Tessera throws for conditions a caller may act on.
 *
 * Bad arguments throw the built-in `TypeError` or `RangeError` instead. Every
 * message names the object it failed on (a key, a path, a chunk id) and, where
 * the user can act, what to do.
 *
 * @module
 */

/** Machine-readable reasons a Tessera operation failed. */
export type TesseraErrorCode =
  | "NOT_FOUND"
  | "INVALID_KEY"
  | "KEY_CONFLICT"
  | "READONLY"
  | "UNSUPPORTED"
  | "PRECONDITION_FAILED"
  | "CHECKSUM_MISMATCH"
  | "CORRUPT_MANIFEST"
  | "CORRUPT_CHUNK"
  | "CORRUPT_POINTER"
  | "S3_REQUEST_FAILED"
  | "S3_BAD_RESPONSE"
  | "HTTP_REQUEST_FAILED"
  | "STORE_IO"
  | "SOURCE_UNREADABLE"
  | "CONFLICT"
  | "CONFIG_INVALID"
  | "STALE"
  | "LEASE_HELD";

/** Options accepted by {@linkcode TesseraError}. */
export interface TesseraErrorOptions {
  /** The lower-level error that caused this one. */
  cause?: unknown;
}

/**
 * An error with a machine-readable {@linkcode TesseraError.code}.
 *
 * @example Branching on the code
 * ```ts
 * import { TesseraError } from "./errors.ts";
 *
 * try {
 *   throw new TesseraError("READONLY", 'Cannot put "a": the store is read-only');
 * } catch (error) {
 *   if (error instanceof TesseraError && error.code === "READONLY") {
 *     console.log("skipped a read-only store");
 *   }
 * }
 * ```
 */
export class TesseraError extends Error {
  /** Why the operation failed. */
  readonly code: TesseraErrorCode;

  /**
   * Creates an error.
   *
   * @param code Why the operation failed.
   * @param message A sentence naming the object and, where possible, what to do.
   * @param options The cause, when there is one.
   */
  constructor(code: TesseraErrorCode, message: string, options: TesseraErrorOptions = {}) {
    super(message, "cause" in options ? { cause: options.cause } : undefined);
    this.name = "TesseraError";
    this.code = code;
  }
}

/** True when `error` is the rejection of an aborted operation. */
export function isAbortError(error: unknown): boolean {
  return error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError");
}

/**
 * The message of `error` for a sentence that names what failed: an `Error`'s message, else the value as text.
 *
 * @example
 * ```ts
 * import { errorMessage } from "./errors.ts";
 * console.log(errorMessage(new RangeError("too long"))); // "too long"
 * console.log(errorMessage("EOF")); // "EOF"
 * ```
 */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
