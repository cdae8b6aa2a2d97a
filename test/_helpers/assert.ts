/**
 * Assertions the tests share.
 *
 * @module
 */

import assert from "node:assert/strict";
import { TesseraError } from "../../src/errors.ts";

/**
 * Asserts that `promise` rejects with a {@linkcode TesseraError} of `code` and, when given, a message equal
 * to `message` (a string) or matching it (a RegExp). Returns the error for further checks.
 */
export async function rejectsWithCode(
  promise: Promise<unknown>,
  code: string,
  message?: string | RegExp,
): Promise<TesseraError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof TesseraError, `expected a TesseraError, got ${error}`);
    assert.equal(error.code, code, error.message);
    if (typeof message === "string") assert.equal(error.message, message);
    else if (message) assert.match(error.message, message);
    return error;
  }
  assert.fail(`expected a rejection with code ${code}`);
}

/** Asserts two byte arrays are equal, reporting the first difference instead of dumping megabytes. */
export function assertBytes(actual: Uint8Array, expected: Uint8Array, what = "bytes"): void {
  assert.equal(
    actual.length,
    expected.length,
    `${what}: length ${actual.length}, expected ${expected.length}`,
  );
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) assert.fail(`${what}: first difference at byte ${i}`);
  }
}
