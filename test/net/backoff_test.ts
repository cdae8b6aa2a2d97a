import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { backoffDelay, DEFAULT_RETRY_POLICY, resolveRetryPolicy, sleep } from "../../src/net/backoff.ts";

describe("backoff", () => {
  it("backoffDelay() stays within [0, min(maxDelayMs, baseDelayMs * 2^retry))", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 60_000 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (retry, base, max, r) => {
          const policy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: base, maxDelayMs: max };
          const delay = backoffDelay(retry, policy, () => r);
          assert.ok(delay >= 0 && delay < Math.max(1, Math.min(max, base * 2 ** retry)));
        },
      ),
    );
    const policy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 100, maxDelayMs: 5000 };
    assert.equal(backoffDelay(0, policy, () => 0.5), 50);
    assert.equal(backoffDelay(3, policy, () => 0.5), 400);
    assert.equal(backoffDelay(20, policy, () => 0.5), 2500);
  });

  it("resolveRetryPolicy() fills defaults and rejects nonsense", () => {
    assert.deepEqual(resolveRetryPolicy({ maxAttempts: 2, timeoutMs: undefined }), {
      ...DEFAULT_RETRY_POLICY,
      maxAttempts: 2,
    });
    assert.throws(() => resolveRetryPolicy({ maxAttempts: 0 }), RangeError);
    assert.throws(() => resolveRetryPolicy({ maxAttempts: 1.5 }), RangeError);
    assert.throws(
      () => resolveRetryPolicy({ baseDelayMs: -1 }),
      /"baseDelayMs": expected a non-negative number/,
    );
  });

  it("sleep() rejects with the abort reason as soon as its signal aborts", async () => {
    const controller = new AbortController();
    const slept = sleep(60_000, controller.signal);
    controller.abort(new Error("stop now"));
    await assert.rejects(slept, /stop now/);
    await assert.rejects(sleep(10, AbortSignal.abort()), { name: "AbortError" });
    await sleep(1);
  });
});
