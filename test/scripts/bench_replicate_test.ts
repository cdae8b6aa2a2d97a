import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { runScript } from "../_helpers/run.ts";

/** The markdown table rows of `text`, by their first cell and by their first two cells. */
function tableRows(text: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("| ")) continue;
    const cells = line.slice(1, -1).split("|").map((c) => c.trim());
    rows.set(cells[0]!, cells);
    rows.set(cells.slice(0, 2).join(" / "), cells);
  }
  return rows;
}

function figure(rows: Map<string, string[]>, row: string, column: number, min = Number.MIN_VALUE): number {
  const cells = rows.get(row);
  assert.ok(cells, `no row "${row}" in the output`);
  const value = Number(cells[column]?.replaceAll(",", ""));
  assert.ok(Number.isFinite(value) && value >= min, `row "${row}" column ${column} is "${cells[column]}"`);
  return value;
}

describe("scripts/_bench/replicate.ts --quick", () => {
  it("prints lag percentiles per rate, writer ratios, the spool through an outage, and a JSON line", async () => {
    const result = await runScript("scripts/_bench/replicate.ts", ["--quick"]);
    assert.equal(result.code, 0, result.stderr);
    const out = result.stdout;
    assert.match(out, /- machine: \d+ cores/);
    assert.match(out, /- runtime: (deno|bun) /);
    const rows = tableRows(out);
    for (const commitsPerS of [1, 10, 100]) {
      const row = `directory / ${commitsPerS}`;
      figure(rows, row, 2); // commits
      figure(rows, row, 3); // snapshots
      const p50 = figure(rows, row, 4);
      const p99 = figure(rows, row, 5);
      assert.ok(p99 >= p50, `${row}: p99 ${p99} < p50 ${p50}`);
    }
    for (const mode of ["wal", "delete"]) {
      for (const measure of ["commits/s", "longest commit (ms)", "p99 commit (ms)"]) {
        const row = `${mode}: ${measure}`;
        figure(rows, row, 1); // without
        figure(rows, row, 2); // with the replicator
        assert.match(rows.get(row)?.[3] ?? "", /^(same|\d+(\.\d+)?x (faster|slower))$/, row);
      }
    }
    for (const after of ["2 s", "4 s"]) {
      figure(rows, after, 1); // pending images
      figure(rows, after, 2); // spool bytes
      figure(rows, after, 4, 0); // coalesced
    }
    figure(rows, "backlog published (drain)", 1);

    const last = out.trim().split("\n").at(-1) ?? "";
    const json = JSON.parse(last) as Record<string, unknown>;
    assert.equal(json.bench, "replicate");
    const lag = json.lag as { rate: number; p50: number; p99: number }[];
    assert.deepEqual(lag.map((l) => l.rate), [1, 10, 100]);
    const writer = json.writer as { mode: string; throughputRatio: number; stallRatio: number }[];
    assert.deepEqual(writer.map((w) => w.mode), ["wal", "delete"]);
    for (const w of writer) {
      assert.ok(w.throughputRatio > 0 && Number.isFinite(w.throughputRatio));
      assert.ok(w.stallRatio > 0 && Number.isFinite(w.stallRatio));
    }
    const outage = json.outage as { samples: { spoolBytes: number }[]; captured: number; drainMs: number };
    assert.equal(outage.samples.length, 2);
    assert.ok(outage.captured > 0, "images were captured during the outage");
    assert.ok(outage.samples.every((s) => s.spoolBytes > 0), "the spool held them");
  });
});
