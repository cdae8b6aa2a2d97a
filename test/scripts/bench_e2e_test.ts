import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import {
  type E2eResults,
  type Measurement,
  renderMarkdown,
  writeResults,
} from "../../scripts/_bench/results.ts";
import { chartRow, lineChart, niceTicks } from "../../scripts/_bench/svg_chart.ts";

/**
 * Checks `svg` is well-formed enough for a browser: one root `<svg>`, every tag closed in order, attribute
 * values quoted, no bare `&` or `<` in text. Returns the elements as [name, attributes] in document order.
 */
function parseSvg(svg: string): [string, Record<string, string>][] {
  const body = svg.replace(/^<\?xml[^>]*\?>\s*/, "");
  const elements: [string, Record<string, string>][] = [];
  const open: string[] = [];
  const token = /<(\/?)([a-zA-Z][\w-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  let match: RegExpExecArray | null;
  let end = 0;
  while ((match = token.exec(body)) !== null) {
    end = token.lastIndex;
    const [, closing, name, attrText, selfClosing, text] = match;
    if (text !== undefined) {
      assert.doesNotMatch(text, /&(?!#\d+;|amp;|lt;|gt;|quot;)/, `a bare & in text "${text}"`);
      continue;
    }
    if (closing) {
      assert.equal(open.pop(), name, `</${name}> closes the wrong element`);
      continue;
    }
    const attrs: Record<string, string> = {};
    for (const [, key, value] of attrText!.matchAll(/([\w:-]+)="([^"]*)"/g)) attrs[key!] = value!;
    elements.push([name!, attrs]);
    if (!selfClosing) open.push(name!);
    if (open.length === 0 && !selfClosing) assert.fail("an element outside the root");
  }
  assert.equal(end, body.length, `cannot parse the SVG from offset ${end}: ${body.slice(end, end + 60)}`);
  assert.deepEqual(open, [], "unclosed elements");
  assert.equal(elements[0]?.[0], "svg");
  return elements;
}

/** The circles of each series group, by series name (`data-series`). */
function pointsBySeries(svg: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const group of svg.matchAll(/<g class="series" data-series="([^"]*)">(.*?)<\/g>/g)) {
    counts.set(group[1]!, (counts.get(group[1]!) ?? 0) + (group[2]!.match(/<circle /g)?.length ?? 0));
  }
  return counts;
}

function measurement(m: Partial<Measurement> & Pick<Measurement, "op" | "setup" | "tool">): Measurement {
  const sizeMiB = m.sizeMiB ?? 256;
  const seconds = m.seconds ?? 1;
  return { sizeMiB, bytes: sizeMiB * 1048576, seconds, samples: [seconds], ...m };
}

// Times chosen so every ratio is exact: Tessera 4 s against awscli 2 s is "2.00x slower", and so on.
function sampleResults(): E2eResults {
  const measurements: Measurement[] = [];
  for (const sizeMiB of [16, 256]) {
    const k = sizeMiB / 16;
    measurements.push(
      measurement({ sizeMiB, op: "restore", setup: "s3", tool: "tessera", seconds: 0.25 * k }),
      measurement({ sizeMiB, op: "restore", setup: "s3", tool: "awscli", seconds: 0.125 * k }),
      measurement({
        sizeMiB,
        op: "restore",
        setup: "latency",
        tool: "tessera",
        seconds: 0.5 * k,
        requests: 4100,
      }),
      measurement({
        sizeMiB,
        op: "restore",
        setup: "latency",
        tool: "awscli",
        seconds: 1.5 * k,
        requests: 33,
      }),
      measurement({ sizeMiB, op: "restore", setup: "static", tool: "tessera", seconds: 0.1 * k }),
      measurement({ sizeMiB, op: "restore", setup: "static", tool: "curl", seconds: 0.025 * k }),
      measurement({ sizeMiB, op: "copy", setup: "local", tool: "cp", seconds: 0.02 * k }),
      measurement({ sizeMiB, op: "sync", setup: "s3", tool: "tessera", seconds: 5 * k, chunks: 256 * k }),
      measurement({ sizeMiB, op: "sync", setup: "s3", tool: "awscli", seconds: 2.5 * k }),
    );
  }
  return {
    date: "2025-01-02T03:04:05.678Z",
    command: "deno task bench:e2e --sizes-mib 16,256",
    commit: "abc1234",
    machine: "2 cores (test CPU), 8 GiB RAM, linux x64",
    runtime: "deno 2 (test)",
    versions: { tessera: "tessera 0.1.0", awscli: "aws-cli/2", curl: "curl 8", staticServer: "nginx/1.22.1" },
    settings: { sizesMiB: [16, 256], latencyMs: 20, reps: 1, sweepMiB: 16, concurrencies: [1, 4, 16] },
    setups: { s3: "s3rver", latency: "s3rver + 20 ms per request", static: "nginx (static files)" },
    databases: [16, 256].map((sizeMiB) => ({
      sizeMiB,
      bytes: sizeMiB * 1048576,
      rows: sizeMiB * 4000,
      pageSize: 4096,
      sha256: "0".repeat(64),
    })),
    measurements,
    sweep: {
      setup: "latency",
      sizeMiB: 16,
      bytes: 16 * 1048576,
      points: [1, 4, 16].map((concurrency) => ({
        concurrency,
        seconds: 8 / concurrency,
        samples: [8 / concurrency],
        requests: 258,
      })),
      awscliSeconds: 1,
    },
    steps: null,
    totalSeconds: 100,
  };
}

describe("the end-to-end benchmark's SVG charts", () => {
  it("lineChart() draws every series with one marker per point, a legend, a title and axis labels", () => {
    const svg = lineChart({
      title: "Restore <time> & size",
      xLabel: "database size (MiB)",
      yLabel: "time (s)",
      xScale: "log2",
      series: [
        { name: "Tessera restore", points: [[16, 0.5], [64, 1.5], [256, 6]] },
        { name: "awscli & co", points: [[16, 1], [256, 4]], dashed: true },
      ],
    });
    const elements = parseSvg(svg);
    assert.deepEqual(pointsBySeries(svg), new Map([["Tessera restore", 3], ["awscli &#38; co", 2]]));
    const texts = [...svg.matchAll(/<text [^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    for (const label of ["Restore &#60;time&#62; &#38; size", "database size (MiB)", "time (s)"]) {
      assert.ok(texts.includes(label), `no text "${label}" in ${texts.join(" | ")}`);
    }
    // The legend names each series, and the x ticks are the data's sizes.
    assert.ok(texts.includes("Tessera restore") && texts.includes("awscli &#38; co"));
    for (const tick of ["16", "64", "256"]) assert.ok(texts.includes(tick), `no x tick ${tick}`);
    assert.equal(elements.filter(([name, a]) => name === "polyline" && "stroke-dasharray" in a).length, 1);
    // Larger values are drawn higher: the y of 6 s is above (smaller than) the y of 0.5 s.
    const ys = [...svg.matchAll(/<g class="series" data-series="Tessera restore">.*?<\/g>/g)][0]![0]
      .match(/cy="([\d.]+)"/g)!.map((a) => Number(a.slice(4, -1)));
    assert.ok(ys[0]! > ys[1]! && ys[1]! > ys[2]!, `y positions ${ys.join(", ")}`);
  });

  it("chartRow() sets the panels side by side in one document under one title", () => {
    const panel = {
      title: "panel",
      xLabel: "x",
      yLabel: "y",
      series: [{ name: "a", points: [[1, 1]] as [number, number][] }],
    };
    const svg = chartRow("Both", [panel, { ...panel, title: "second" }]);
    const elements = parseSvg(svg);
    const nested = elements.filter(([name]) => name === "svg").slice(1);
    assert.deepEqual(nested.map(([, a]) => a.x), ["0", "480"]);
    assert.equal(elements[0]![1].width, "960");
  });

  it("niceTicks() runs from 0 past the largest value in round steps", () => {
    assert.deepEqual(niceTicks(7.3), [0, 2, 4, 6, 8]);
    assert.deepEqual(niceTicks(100), [0, 20, 40, 60, 80, 100]);
    assert.deepEqual(niceTicks(0.33), [0, 0.1, 0.2, 0.3, 0.4]);
    assert.deepEqual(niceTicks(0), [0, 1]);
  });
});

describe("the end-to-end benchmark's results writer", () => {
  it("writeResults() writes LATEST.md with the ratio rows, latest.json and both charts", async () => {
    const dir = await makeTempDir("bench-results");
    try {
      const results = sampleResults();
      const files = await writeResults(dir, results);
      assert.deepEqual(files.map((f) => f.slice(dir.length + 1)).sort(), [
        "LATEST.md",
        "latest.json",
        "restore-vs-concurrency.svg",
        "restore-vs-size.svg",
      ]);
      const md = await readFile(join(dir, "LATEST.md"), "utf8");
      assert.equal(md, renderMarkdown(results));
      const rows = md.split("\n").filter((line) => line.startsWith("| "))
        .map((line) => line.slice(1, -1).split("|").map((cell) => cell.trim()));
      const row = (...cells: string[]) => {
        const found = rows.find((r) => cells.every((c) => r.includes(c)));
        assert.ok(found, `no row with ${cells.join(", ")}:\n${rows.map((r) => r.join(" | ")).join("\n")}`);
      };
      row("cold restore from s3rver", "4.00 s", "awscli download 2.00 s", "2.00x slower");
      row(
        "cold restore from s3rver + 20 ms per request",
        "8.00 s",
        "awscli download 24.00 s",
        "3.00x faster",
      );
      row("cold restore from nginx (static files)", "1.60 s", "curl download 400 ms", "4.00x slower");
      row("full sync to s3rver", "80.00 s", "awscli upload 40.00 s", "2.00x slower");
      row("16.0 MiB", "s3rver + 20 ms per request", "awscli download", "500 ms", "1.50 s", "3.00x faster");
      row("16.0 MiB", "s3rver", "awscli upload", "5.00 s", "2.50 s", "2.00x slower");
      row("1", "8.00 s", "2.0", "8.00x slower");
      row("16", "500 ms", "32.0", "2.00x faster");
      assert.match(md, /4,100 \/ 33/);
      assert.match(md, /!\[[^\]]+\]\(restore-vs-size\.svg\)/);
      assert.match(md, /!\[[^\]]+\]\(restore-vs-concurrency\.svg\)/);
      assert.match(md, /deno task bench:e2e --sizes-mib 16,256/);
      assert.match(md, /at commit abc1234/);

      assert.deepEqual(JSON.parse(await readFile(join(dir, "latest.json"), "utf8")), results);
      const bySize = await readFile(join(dir, "restore-vs-size.svg"), "utf8");
      const panels = parseSvg(bySize).filter(([name]) => name === "svg").length - 1;
      assert.equal(panels, 3);
      for (const title of ["s3rver", "s3rver + 20 ms per request", "nginx (static files)"]) {
        assert.match(bySize, new RegExp(`>${title.replace(/[+()]/g, "\\$&")}</text>`));
      }
      assert.deepEqual(
        [...bySize.matchAll(/data-series="([^"]*)"/g)].map((m) => m[1]),
        [
          ...["Tessera restore", "awscli download", "cp + fsync"],
          ...["Tessera restore", "awscli download", "cp + fsync"],
          ...["Tessera restore", "curl download", "cp + fsync"],
        ],
      );
      const byConcurrency = await readFile(join(dir, "restore-vs-concurrency.svg"), "utf8");
      parseSvg(byConcurrency);
      assert.deepEqual(
        pointsBySeries(byConcurrency),
        new Map([["Tessera restore", 3], ["awscli download (its own parallelism)", 2]]),
      );
    } finally {
      await removeDir(dir);
    }
  });
});
