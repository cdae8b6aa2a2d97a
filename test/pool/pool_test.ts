import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { forEachLimit, mapLimit } from "../../src/pool.ts";

describe("pool", () => {
  it("mapLimit() returns results in the items' order and never runs more than the limit at once", async () => {
    let running = 0;
    let most = 0;
    const out = await mapLimit([5, 1, 4, 2, 3], async (n) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, n));
      running--;
      return n * 10;
    }, { concurrency: 2 });
    assert.deepEqual(out, [50, 10, 40, 20, 30]);
    assert.equal(most, 2);
  });

  it("forEachLimit() starts no item after the first failure and rejects with that error", async () => {
    const started: number[] = [];
    await assert.rejects(
      forEachLimit([0, 1, 2, 3, 4, 5], async (n) => {
        started.push(n);
        await new Promise((r) => setTimeout(r, 1));
        if (n === 1) throw new Error("item 1 failed");
      }, { concurrency: 2 }),
      /item 1 failed/,
    );
    assert.ok(started.length <= 3, `started ${started}`);
  });

  it("forEachLimit() stops at an abort and rejects with its reason", async () => {
    const controller = new AbortController();
    const done: number[] = [];
    await assert.rejects(
      forEachLimit([0, 1, 2, 3], async (n) => {
        done.push(n);
        if (n === 0) controller.abort(new Error("stopped by the caller"));
      }, { concurrency: 1, signal: controller.signal }),
      /stopped by the caller/,
    );
    assert.deepEqual(done, [0]);
  });

  it("forEachLimit() of no items resolves without calling the work", async () => {
    await forEachLimit([], () => Promise.reject(new Error("never called")));
  });
});

describe("forEachLimit() with a bound that changes", () => {
  it("starts jobs only while fewer than the bound run, asking it before each job", async () => {
    let bound = 1;
    let running = 0;
    const most: number[] = [];
    await forEachLimit(Array.from({ length: 30 }, (_, i) => i), async (i) => {
      running++;
      most[i] = running;
      if (i === 9) bound = 4;
      await new Promise((resolve) => setTimeout(resolve, 2));
      running--;
    }, { concurrency: () => bound });
    assert.ok(most.slice(0, 10).every((n) => n === 1), `first ten one at a time: ${most}`);
    assert.equal(Math.max(...most.slice(10)), 4);
  });

  it("rejects with the first failure, starting nothing after it", async () => {
    const started: number[] = [];
    await assert.rejects(
      forEachLimit([0, 1, 2, 3, 4, 5], async (i) => {
        started.push(i);
        await new Promise((resolve) => setTimeout(resolve, 1));
        if (i === 1) throw new Error("job 1 failed");
      }, { concurrency: () => 2 }),
      /job 1 failed/,
    );
    assert.ok(started.length <= 4, `${started}`);
  });
});
