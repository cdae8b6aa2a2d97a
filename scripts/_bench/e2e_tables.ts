/**
 * The tables of `LATEST.md`: the summary, restores and syncs by size and store setup, and the concurrency
 * sweep, each Tessera figure beside its alternative as a ratio that says which side was faster.
 *
 * @module
 */

import { TOOL_NAMES } from "./e2e_charts.ts";
import { int, markdownTable, mib, versus } from "./replica_report.ts";
import { secs } from "./report.ts";
import type { E2eResults, Measurement, SetupKey, Sweep } from "./results.ts";

/** Cold restores: a row per size and setup. */
export function restoreTable(r: E2eResults): string[] {
  const rows: string[][] = [];
  for (const db of r.databases) {
    const at = r.measurements.filter((m) => m.sizeMiB === db.sizeMiB);
    const cp = at.find((m) => m.op === "copy");
    for (const setup of Object.keys(r.setups) as SetupKey[]) {
      const tessera = at.find((m) => m.op === "restore" && m.setup === setup && m.tool === "tessera");
      const alt = at.find((m) => m.op === "restore" && m.setup === setup && m.tool !== "tessera");
      if (tessera === undefined) continue;
      rows.push([
        mib(db.bytes),
        r.setups[setup],
        alt ? TOOL_NAMES[alt.tool] : "",
        secs(tessera.seconds),
        alt ? secs(alt.seconds) : "",
        alt ? versus(tessera.seconds, alt.seconds, true) : "",
        rate(tessera),
        cp ? versus(tessera.seconds, cp.seconds, true) : "",
        requests(tessera, alt),
      ]);
    }
  }
  return markdownTable(
    [
      "database",
      "store",
      "alternative",
      "Tessera",
      "alternative's",
      "Tessera vs alternative",
      "Tessera MiB/s",
      "Tessera vs cp + fsync",
      "requests (Tessera / alt.)",
    ],
    rows,
    3,
  );
}

/**
 * The headline: at the largest size, each Tessera restore and full sync beside its alternative, and the
 * sweep's fastest restore. README.md's Performance section shows these rows.
 */
export function summaryTable(r: E2eResults): string[] {
  const size = Math.max(...r.databases.map((d) => d.sizeMiB));
  const at = r.measurements.filter((m) => m.sizeMiB === size);
  const find = (op: Measurement["op"], setup: SetupKey, tessera: boolean) =>
    at.find((m) => m.op === op && m.setup === setup && (m.tool === "tessera") === tessera);
  const rows: string[][] = [];
  for (const [op, what] of [["restore", "cold restore from"], ["sync", "full sync to"]] as const) {
    for (const setup of Object.keys(r.setups) as SetupKey[]) {
      const tessera = find(op, setup, true);
      const alt = find(op, setup, false);
      if (tessera === undefined || alt === undefined) continue;
      const altName = op === "sync" ? "awscli upload" : TOOL_NAMES[alt.tool];
      rows.push([
        `${what} ${r.setups[setup]}`,
        secs(tessera.seconds),
        `${altName} ${secs(alt.seconds)}`,
        versus(tessera.seconds, alt.seconds, true),
      ]);
    }
  }
  const best = r.sweep?.points.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  if (r.sweep && best) {
    rows.push([
      `cold restore from ${r.setups[r.sweep.setup]}, ${
        mib(r.sweep.bytes)
      }, --concurrency ${best.concurrency}`,
      secs(best.seconds),
      `${TOOL_NAMES.awscli} ${secs(r.sweep.awscliSeconds)}`,
      versus(best.seconds, r.sweep.awscliSeconds, true),
    ]);
  }
  const database = r.databases.find((d) => d.sizeMiB === size);
  const heading = database ? `${mib(database.bytes)} database` : "database";
  return markdownTable([heading, "Tessera", "alternative", "Tessera vs alternative"], rows, 1);
}

/** The sweep's rows, one per concurrency, and awscli's download as the reference. */
export function sweepTable(sweep: Sweep): string[] {
  const rate = (seconds: number) => (sweep.bytes / 1048576 / seconds).toFixed(1);
  return [
    ...markdownTable(
      ["--concurrency", "time", "MiB/s", "requests", "vs awscli download"],
      [
        ...sweep.points.map((p) => [
          String(p.concurrency),
          secs(p.seconds),
          rate(p.seconds),
          int(p.requests),
          versus(p.seconds, sweep.awscliSeconds, true),
        ]),
        ["awscli download", secs(sweep.awscliSeconds), rate(sweep.awscliSeconds), "", ""],
      ],
    ),
  ];
}

/** Full syncs against whole-file uploads: a row per size and setup. */
export function syncTable(r: E2eResults): string[] {
  const rows: string[][] = [];
  for (const db of r.databases) {
    const at = r.measurements.filter((m) => m.sizeMiB === db.sizeMiB && m.op !== "restore");
    for (const setup of Object.keys(r.setups) as SetupKey[]) {
      const tessera = at.find((m) => m.op === "sync" && m.setup === setup && m.tool === "tessera");
      const alt = at.find((m) => m.op === "sync" && m.setup === setup && m.tool === "awscli") ??
        (setup === "static" ? at.find((m) => m.op === "copy") : undefined);
      if (tessera === undefined) continue;
      rows.push([
        mib(db.bytes),
        setup === "static" ? "a local directory (what the static server serves)" : r.setups[setup],
        secs(tessera.seconds),
        int(tessera.chunks ?? 0),
        alt ? (alt.tool === "cp" ? "cp + fsync" : "awscli upload") : "",
        alt ? secs(alt.seconds) : "",
        alt ? versus(tessera.seconds, alt.seconds, true) : "",
        requests(tessera, alt),
      ]);
    }
  }
  return markdownTable(
    ["database", "store", "Tessera", "chunks up", "alternative", "its time", "Tessera vs it", "requests"],
    rows,
    2,
  );
}

function requests(tessera: Measurement, alt: Measurement | undefined): string {
  if (tessera.requests === undefined) return "";
  return `${int(tessera.requests)} / ${alt?.requests === undefined ? "?" : int(alt.requests)}`;
}

function rate(m: Measurement): string {
  return (m.bytes / 1048576 / m.seconds).toFixed(1);
}
