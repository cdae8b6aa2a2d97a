/**
 * Assertions shared by the config tests.
 *
 * @module
 */

import assert from "node:assert/strict";
import { TesseraError } from "../../src/errors.ts";

/** Awaits `action`, asserts it fails with CONFIG_INVALID, that the message holds every one of `parts`
 * and none of `secrets`, and returns the message. */
export async function configError(
  action: () => Promise<unknown> | unknown,
  parts: readonly string[],
  secrets: readonly string[] = [],
): Promise<string> {
  let caught: unknown;
  try {
    await action();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof TesseraError, `expected a TesseraError, got ${caught}`);
  assert.equal(caught.code, "CONFIG_INVALID", caught.message);
  for (const part of parts) {
    assert.ok(caught.message.includes(part), `"${caught.message}" should name ${part}`);
  }
  for (const secret of secrets) {
    assert.ok(!caught.message.includes(secret), `"${caught.message}" leaks a secret`);
  }
  return caught.message;
}
