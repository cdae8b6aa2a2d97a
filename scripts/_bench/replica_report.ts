/**
 * What the replica benchmark prints: markdown tables, numbers formatted one way throughout, ratios that say
 * which side was faster, and the few statistics the sections share.
 *
 * @module
 */

/** A markdown table: the first `textColumns` columns left-aligned, the others (figures) right-aligned. */
export function markdownTable(headers: string[], rows: string[][], textColumns = 1): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, 3, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    `| ${
      cells.map((c, i) => (i < textColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")
    } |`;
  const rule = widths.map((w, i) => (i < textColumns ? `:${"-".repeat(w + 1)}` : `${"-".repeat(w + 1)}:`));
  return [line(headers), `|${rule.join("|")}|`, ...rows.map((r) => line(headers.map((_, i) => r[i] ?? "")))];
}

/**
 * `value` set against `baseline`, both "more is better" (ops/s) or both "less is better" (`lowerIsBetter`,
 * times), as "1.52x slower" or "2.10x faster", so no reader has to know which way a quotient points.
 */
export function versus(value: number, baseline: number, lowerIsBetter = false): string {
  if (!(value > 0) || !(baseline > 0)) return "n/a";
  const faster = lowerIsBetter ? value <= baseline : value >= baseline;
  const factor = Math.max(value / baseline, baseline / value);
  if (factor < 1.005) return "same";
  return `${factor.toFixed(factor >= 100 ? 0 : factor >= 10 ? 1 : 2)}x ${faster ? "faster" : "slower"}`;
}

/** A whole number with thousands separators. */
export function int(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Milliseconds, with a decimal below 100. */
export function ms(n: number): string {
  return n < 100 ? n.toFixed(1) : int(n);
}

/** A rate with three significant digits at most, and no fewer than one decimal below 10. */
export function rate(n: number): string {
  return n >= 100 ? int(n) : n.toFixed(n >= 10 ? 1 : 2);
}

/** Bytes as MiB with one decimal. */
export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/**
 * The `p`th percentile by linear interpolation between closest ranks; for 50 samples p99 lies between the
 * two largest.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

/** (largest − smallest) ÷ median, as a percentage: how much the rounds of one measurement disagreed. */
export function spread(values: readonly number[]): string {
  if (values.length < 2) return "1 round";
  const m = median(values);
  return `±${((Math.max(...values) - Math.min(...values)) / m / 2 * 100).toFixed(1)}%`;
}

/** A deterministic pseudo-random generator (mulberry32), so every target reads the same keys. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` keys drawn uniformly from 1 .. `max`. */
export function randomKeys(count: number, max: number, seed: number): Int32Array {
  const next = seededRandom(seed);
  return Int32Array.from({ length: count }, () => 1 + Math.floor(next() * max));
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable between processes on one host. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}
