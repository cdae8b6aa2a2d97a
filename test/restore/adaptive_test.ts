import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { AdaptiveWidth } from "../../src/restore/_adaptive.ts";

describe("the reader's adaptive width", () => {
  it("doubles while throughput grows by a tenth, takes back a doubling that did not pay, then holds", () => {
    let clock = 0;
    const width = new AdaptiveWidth(32, 2, () => clock);
    // A store whose throughput grows with requests in flight up to 8, then stays flat.
    const serve = () => {
      const w = width.width;
      for (let i = 0; i < 2 * w; i++) {
        clock += 10 / Math.min(w, 8);
        width.record(1000);
      }
    };
    const seen: number[] = [];
    for (let round = 0; round < 6; round++) {
      seen.push(width.width);
      serve();
    }
    assert.deepEqual(seen, [2, 4, 8, 16, 8, 8]);
  });

  it("never passes its bound, nor goes under 1", () => {
    let clock = 0;
    const width = new AdaptiveWidth(3, 4, () => clock);
    assert.equal(width.width, 3);
    for (let i = 0; i < 100; i++) {
      clock += 1;
      width.record(1_000_000);
    }
    assert.equal(width.width, 3);
    assert.equal(new AdaptiveWidth(1, 4).width, 1);
  });
});
