/**
 * Tables of the query sections: throughput beside @libsql/client and raw sqlite-wasm, and the per-query
 * cost of autoRefresh and of a poller.
 *
 * @module
 */

import type { BenchDatabase } from "./replica_fixture.ts";
import type { AutoRefreshResult, Throughput } from "./replica_query.ts";
import { int, markdownTable, median, mib, spread, versus } from "./replica_report.ts";
import { POINT_SQL, RANGE_ROWS, RANGE_SQL } from "./replica_targets.ts";

/** Point and range throughput, each target beside the two baselines. */
export function renderQueries(results: Throughput[], db: BenchDatabase): string[] {
  const find = (label: string) => results.find((r) => r.label === label);
  const libsql = find("@libsql/client");
  const raw = find("raw sqlite-wasm (C API)");
  const rows = results.map((r) => {
    const points = median(r.points);
    const ranges = median(r.ranges);
    const vs = (base: Throughput | undefined, pick: (t: Throughput) => number[]) =>
      base && base !== r ? versus(median(pick(r)), median(pick(base))) : "—";
    return [
      r.label,
      int(points),
      vs(libsql, (t) => t.points),
      vs(raw, (t) => t.points),
      int(ranges),
      int(ranges * RANGE_ROWS),
      vs(libsql, (t) => t.ranges),
      vs(raw, (t) => t.ranges),
      `${spread(r.points)} / ${spread(r.ranges)}`,
    ];
  });
  const rounds = results[0]?.points.length ?? 0;
  return [
    `## Query throughput (${db.name}: ${mib(db.bytes)}, ${
      int(db.rows)
    } rows; one query at a time, each awaited)`,
    "",
    `point: \`${POINT_SQL}\` with random ids; range: \`${RANGE_SQL}\` (${RANGE_ROWS} rows).`,
    "Replicas and @libsql/client run `execute({ sql, args })`: the wasm engine reuses its prepared statement",
    "by SQL text; @libsql/client exposes none to reuse. raw sqlite-wasm binds and steps two statements",
    "prepared once, on the bytes deserialized read-only into memory, through its C exports (as the wasm",
    "engine calls them) or its oo1 `Stmt` methods. Every target copies each payload out. Ratios compare",
    `ops/s; median of ${rounds} rounds, targets rotated each round, each repeating its queries for at least`,
    "0.5 s (not with --quick); spread = half the range of the rounds ÷ median.",
    "",
    ...markdownTable(
      [
        "target",
        "point q/s",
        "vs @libsql/client",
        "vs raw (C API)",
        "ranges/s",
        "rows/s",
        "vs @libsql/client",
        "vs raw (C API)",
        "spread (point / range)",
      ],
      rows,
    ),
  ];
}

/** Point-select throughput through `execute` with autoRefresh off, on, and on with a poller. */
export function renderAutoRefresh({ rows: results, checkMs }: AutoRefreshResult): string[] {
  const rows = results.map((r) => {
    const off = results.find((o) => o.engine === r.engine && o.config === "autoRefresh off")!;
    const ops = median(r.points);
    const costUs = 1e6 / ops - 1e6 / median(off.points);
    return [
      `replica ${r.engine}, ${r.config}`,
      int(ops),
      (1e6 / ops).toFixed(2),
      r === off ? "—" : versus(ops, median(off.points)),
      r === off ? "—" : `${costUs >= 0 ? "+" : ""}${costUs.toFixed(2)}`,
      r.checks > 0 ? `${r.checks} in ${r.seconds.toFixed(1)} s` : "0",
      spread(r.points),
    ];
  });
  return [
    "## Cost of autoRefresh per transaction (point selects through `execute`, each its own transaction)",
    "",
    "autoRefresh off/on with pollIntervalMs 3,600,000 (no check during the run); then on with a poller every",
    "100 ms (each check a conditional GET of the pointer, answered 304). Each replica opens from a warm",
    "cache directory for its round and is closed after it; median of the rounds after a first, unrecorded",
    "one. Δ µs/query is the difference in time per query from autoRefresh off, noise included. Every",
    "configuration lets the event loop turn (setImmediate) once per 100 queries, as a server does between",
    "requests: a loop of awaited queries alone never does (each `execute` settles in microtasks), so no",
    "poller timer could fire during it.",
    "",
    ...markdownTable(
      ["replica", "q/s", "µs/query", "vs autoRefresh off", "Δ µs/query", "store checks", "spread"],
      rows,
    ),
    "",
    "One check that finds nothing new (`refresh(2)`, a conditional GET of the pointer answered 304) takes " +
    Object.entries(checkMs).map(([engine, t]) => `${t.toFixed(2)} ms (${engine})`).join(", ") +
    " of wall time, median of 30: polling every 100 ms spends at most that share of 100 ms, waiting included.",
  ];
}
