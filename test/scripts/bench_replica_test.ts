import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { runScript } from "../_helpers/run.ts";

/** The markdown table rows of `text`, by their first cell. */
function tableRows(text: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("| ")) continue;
    const cells = line.slice(1, -1).split("|").map((c) => c.trim());
    rows.set(cells.slice(0, 3).join(" / "), cells);
    rows.set(cells[0]!, cells);
  }
  return rows;
}

function positive(rows: Map<string, string[]>, row: string, column: number): number {
  const cells = rows.get(row);
  assert.ok(cells, `no row "${row}" in the output`);
  const value = Number(cells[column]?.replaceAll(",", ""));
  assert.ok(Number.isFinite(value) && value > 0, `row "${row}" column ${column} is "${cells[column]}"`);
  return value;
}

describe("scripts/_bench/replica.ts --quick", () => {
  it("prints finite, positive figures for every engine, baseline and section", async () => {
    const result = await runScript("scripts/_bench/replica.ts", ["--quick"]);
    assert.equal(result.code, 0, result.stderr);
    const out = result.stdout;
    assert.match(out, /- machine: \d+ cores/);
    assert.match(out, /- runtime: (deno|bun) /);
    const rows = tableRows(out);
    for (
      const target of [
        "replica wasm",
        "replica native",
        "@libsql/client",
        "raw sqlite-wasm (C API)",
        "raw sqlite-wasm (oo1)",
      ]
    ) {
      positive(rows, target, 1); // point selects per second
      positive(rows, target, 4); // ranges per second
    }
    for (const engine of ["wasm", "native"]) {
      for (const config of ["autoRefresh off", "autoRefresh on", "autoRefresh on, poll every 100 ms"]) {
        positive(rows, `replica ${engine}, ${config}`, 1);
      }
      positive(rows, `replica ${engine}: commit → visible`, 1); // p50 ms
      positive(rows, `replica ${engine}: commit → visible`, 2); // p99 ms
    }
    for (const db of ["app-1 (1.0 MiB)", "app-4 (4.0 MiB)"]) {
      for (
        const method of ["replica wasm", "replica native", "restoreImage", "replica wasm, concurrency 32"]
      ) {
        for (const cache of ["cold", "warm"]) {
          positive(rows, `${db} / ${cache} / ${method}`, 3); // ms
          positive(rows, `${db} / ${cache} / ${method}`, 4); // MB/s
        }
      }
      positive(rows, `${db} / none / aws s3 cp (whole file)`, 3);
    }
    const opened = positive(rows, "opened", 4); // chunkBytes
    const both = rows.get("1-row update refreshed; a read transaction still holds the old snapshot");
    assert.ok(both, out);
    assert.equal(both[2], "2", "the read transaction keeps the old snapshot");
    const shared = positive(
      rows,
      "1-row update refreshed; a read transaction still holds the old snapshot",
      4,
    );
    assert.ok(shared < opened * 1.5, `two generations hold ${shared} bytes, one held ${opened}: not shared`);
  });
});
