/**
 * The typed error the S3 client throws after its last try.
 *
 * @module
 */

import { TesseraError, type TesseraErrorCode } from "../errors.ts";

/** What an {@linkcode S3Error} reports about the failed request. */
export interface S3ErrorDetails {
  /** The S3 operation, such as `GetObject`. */
  operation: string;
  bucket: string;
  /** The object key, absent for bucket-level operations. */
  key?: string | undefined;
  /** The HTTP status of the last response; absent when no response arrived. */
  status?: number | undefined;
  /** The S3 error code from the XML body (`NoSuchBucket`, `SlowDown`, ...). */
  s3Code?: string | undefined;
  /** The S3 error message from the XML body. */
  s3Message?: string | undefined;
  requestId?: string | undefined;
  /** How many tries were made. */
  attempts: number;
  /** A sentence on what went wrong when no response arrived (reset, timeout, truncated body). */
  failure?: string | undefined;
  /** A sentence on what the user can do. */
  hint?: string | undefined;
}

/**
 * An S3 request that failed for good. The message names the operation, the object, the status and the S3
 * error code; it never holds credentials, signatures or request headers.
 */
export class S3Error extends TesseraError {
  readonly operation: string;
  readonly bucket: string;
  readonly key: string | undefined;
  readonly status: number | undefined;
  readonly s3Code: string | undefined;
  readonly requestId: string | undefined;
  readonly attempts: number;

  constructor(code: TesseraErrorCode, details: S3ErrorDetails, options: { cause?: unknown } = {}) {
    super(code, describe(details), options);
    this.name = "S3Error";
    this.operation = details.operation;
    this.bucket = details.bucket;
    this.key = details.key;
    this.status = details.status;
    this.s3Code = details.s3Code;
    this.requestId = details.requestId;
    this.attempts = details.attempts;
  }
}

function describe(d: S3ErrorDetails): string {
  const target = d.key === undefined ? `bucket "${d.bucket}"` : `"s3://${d.bucket}/${d.key}"`;
  const tries = `${d.attempts} ${d.attempts === 1 ? "attempt" : "attempts"}`;
  let what: string;
  if (d.status === undefined) {
    what = d.failure ?? "no response";
  } else {
    what = `HTTP ${d.status}`;
    if (d.s3Code) what += ` ${d.s3Code}`;
    if (d.s3Message) what += ` (${d.s3Message})`;
    if (d.requestId) what += ` [request id ${d.requestId}]`;
  }
  const hint = d.hint ? `; ${d.hint}` : "";
  return `S3 ${d.operation} of ${target} failed after ${tries}: ${what}${hint}`;
}
