/**
 * The end-to-end benchmark's charts: restore time against database size, one panel per store setup, and
 * restore throughput against `--concurrency` on the latency store.
 *
 * @module
 */

import type { E2eResults, Measurement, SetupKey, Tool } from "./results.ts";
import { chartRow, lineChart, type Series } from "./svg_chart.ts";

/** One colour per tool, the same in every chart. */
export const TOOL_COLORS: Record<Tool, string> = {
  tessera: "#1864ab",
  awscli: "#d9480f",
  curl: "#862e9c",
  cp: "#2b8a3e",
};

/** The series name of each tool's restore. */
export const TOOL_NAMES: Record<Tool, string> = {
  tessera: "Tessera restore",
  awscli: "awscli download",
  curl: "curl download",
  cp: "cp + fsync",
};

/** Restore time against database size: a panel per store setup with Tessera, its alternative and cp. */
export function restoreBySizeChart(r: E2eResults): string {
  const copies = r.measurements.filter((m) => m.op === "copy");
  const panels = (Object.keys(r.setups) as SetupKey[]).map((setup) => {
    const restores = r.measurements.filter((m) => m.op === "restore" && m.setup === setup);
    const tools = [...new Set(restores.map((m) => m.tool))];
    const series: Series[] = tools.map((tool) => bySize(TOOL_NAMES[tool], tool, restores));
    if (copies.length > 0) series.push({ ...bySize(TOOL_NAMES.cp, "cp", copies), dashed: true });
    return {
      title: r.setups[setup],
      xLabel: "database size (MiB)",
      yLabel: "restore time (s)",
      xScale: "log2" as const,
      width: 360,
      series,
    };
  });
  return chartRow(
    "Cold restore of the whole database (lower is better; each panel has its own scale)",
    panels,
  );
}

/** Restore throughput against `--concurrency`, with awscli's download of the same file as a reference. */
export function restoreByConcurrencyChart(r: E2eResults): string | null {
  const sweep = r.sweep;
  if (sweep === null || sweep.points.length === 0) return null;
  const mibPerSec = (seconds: number) => sweep.bytes / 1048576 / seconds;
  const xs = sweep.points.map((p) => p.concurrency);
  return lineChart({
    title: "Restore throughput against --concurrency (higher is better)",
    subtitle: `${sweep.sizeMiB} MiB database, cold, from ${r.setups[sweep.setup]}`,
    xLabel: "tessera restore --concurrency (chunks fetched at once)",
    yLabel: "throughput (MiB/s)",
    xScale: "log2",
    width: 620,
    height: 380,
    series: [
      {
        name: TOOL_NAMES.tessera,
        color: TOOL_COLORS.tessera,
        points: sweep.points.map((p) => [p.concurrency, mibPerSec(p.seconds)]),
      },
      {
        name: `${TOOL_NAMES.awscli} (its own parallelism)`,
        color: TOOL_COLORS.awscli,
        dashed: true,
        points: [[Math.min(...xs), mibPerSec(sweep.awscliSeconds)], [
          Math.max(...xs),
          mibPerSec(sweep.awscliSeconds),
        ]],
      },
    ],
  });
}

function bySize(name: string, tool: Tool, measurements: Measurement[]): Series {
  const points = measurements.filter((m) => m.tool === tool).map((
    m,
  ): [number, number] => [m.sizeMiB, m.seconds])
    .sort((a, b) => a[0] - b[0]);
  return { name, color: TOOL_COLORS[tool], points };
}
