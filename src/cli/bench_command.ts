/**
 * `tessera bench`: measure the user's own store (throughput, latency) and recommend a restore concurrency.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { TesseraError } from "../errors.ts";
import type { BlobStore } from "../store/types.ts";
import { commandContext, STORE_OPTIONS, STORE_OPTIONS_HELP } from "./_common.ts";
import { type CliIo, EXIT, UsageError } from "./_io.ts";
import { type Progress, progressPrinter } from "./_progress.ts";
import {
  benchPrefix,
  benchStore,
  formatBytes,
  RECOMMEND_TOLERANCE,
  type StoreBenchReport,
} from "./_store_bench.ts";
import { durationOption, sizeOption } from "./_values.ts";

const KIB = 1024;
const MIB = 1024 * KIB;
const DEFAULT_SIZES = "64k,8m,16m";
const DEFAULT_CONCURRENCY = "1,4,8,16,32";
const DEFAULT_RANGE = "4m";
const DEFAULT_DURATION = "0.5s";
const DEFAULT_BYTES = "256m";
const MAX_SIZE = 1024 * MIB;
const MAX_CONCURRENCY = 1024;
/** The exit code after Ctrl-C, as shells report a process SIGINT stopped. */
const EXIT_INTERRUPTED = 130;

/** `tessera bench --help`. */
export const BENCH_HELP = `Usage: tessera bench [--sizes LIST] [--concurrency LIST] [--duration D] [options]

Measure a store from this machine: PUT and GET of objects the size of a chunk (64 KiB) and of a
pack (8 MiB, 16 MiB) at several concurrencies, GETs of 4 MiB ranges of the largest object (how
restores read packs), and the latency of HEAD and of a conditional GET (If-None-Match answered
"not modified"). Prints one row per operation, size and concurrency: MB/s (10^6 bytes a second),
requests a second and latency p50/p90/p99. Then it recommends a restore concurrency: the smallest
whose ranged GETs come within ${RECOMMEND_TOLERANCE * 100}% of the fastest measured.

Every object goes under a new prefix, bench/<time>-<random>/, and is removed at the end, also after
a failure or Ctrl-C (Ctrl-C again stops the removal and names the prefix). A read-only store
(http:// or https://) can only be read: name an existing object with --key. Each row starts at
least one request per worker, so 16 MiB objects at concurrency 32 move at least 512 MiB. Progress
goes to stderr when it is a terminal. With several stores, each is measured in turn.

Options:
  --sizes LIST         object sizes to PUT and GET (default ${DEFAULT_SIZES}); k, m, g mean KiB, MiB, GiB
  --concurrency LIST   requests in flight at once, one row each (default ${DEFAULT_CONCURRENCY})
  --range-size SIZE    bytes each ranged GET reads (default ${DEFAULT_RANGE}); at most the largest size
  --duration D         a row starts no request after D (default ${DEFAULT_DURATION}; such as 2s or 1m)
  --bytes SIZE         ... nor once it has asked for SIZE bytes (default ${DEFAULT_BYTES})
  --key KEY            write nothing: read this existing object (GET, ranged GET, HEAD, conditional)
${STORE_OPTIONS_HELP}

Exit codes: 0 done, 1 failed, 2 bad usage, 3 not found (no object named by --key), 130 interrupted
(Ctrl-C; what was written is removed first).
`;

/** Runs `tessera bench`. */
export async function benchCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...STORE_OPTIONS,
      sizes: { type: "string" },
      concurrency: { type: "string" },
      "range-size": { type: "string" },
      duration: { type: "string" },
      bytes: { type: "string" },
      key: { type: "string" },
    },
  });
  if (values.help) {
    io.stdout(BENCH_HELP);
    return EXIT.ok;
  }
  const key = values.key;
  if (key !== undefined && values.sizes !== undefined) {
    throw new UsageError("bench: --sizes does not apply with --key, which reads one object of its own size");
  }
  const sizes = listOption("--sizes", values.sizes ?? DEFAULT_SIZES, parseSize);
  const concurrencies = listOption(
    "--concurrency",
    values.concurrency ?? DEFAULT_CONCURRENCY,
    parseConcurrency,
  );
  const rangeBytes = sizeOption("--range-size", values["range-size"] ?? DEFAULT_RANGE, MAX_SIZE);
  const largest = Math.max(...sizes);
  if (key === undefined && rangeBytes > largest) {
    throw new UsageError(
      `bench: --range-size ${values["range-size"] ?? DEFAULT_RANGE} is larger than the largest of --sizes ` +
        `(${formatBytes(largest)}): give a smaller --range-size or a larger size`,
    );
  }
  const durationMs = durationOption("--duration", values.duration ?? DEFAULT_DURATION);
  if (durationMs <= 0) throw new UsageError("--duration must be longer than 0s");
  const maxBytes = sizeOption("--bytes", values.bytes ?? DEFAULT_BYTES);

  const context = await commandContext(values, io);
  const readOnly = context.readable.find((s) => !s.capabilities.write);
  if (readOnly && key === undefined) {
    throw new UsageError(
      `bench: ${readOnly.description} is read-only: name an existing object to read with --key KEY`,
    );
  }

  const interrupt = new AbortController();
  const stopCleanup = new AbortController();
  const onInt = () => {
    if (interrupt.signal.aborted) {
      stopCleanup.abort(new DOMException("Interrupted again", "AbortError"));
      return;
    }
    io.stderr("tessera: interrupted: removing the benchmark's objects (Ctrl-C again to stop)\n");
    interrupt.abort(new DOMException("Interrupted", "AbortError"));
  };
  process.on("SIGINT", onInt);
  const progress = progressLine(io);
  let store: BlobStore | undefined;
  try {
    for (store of context.readable) {
      const report = await benchStore(store, {
        sizes,
        concurrencies,
        rangeBytes,
        durationMs,
        maxBytes,
        prefix: benchPrefix(),
        key,
        signal: interrupt.signal,
        cleanupSignal: stopCleanup.signal,
        onProgress: progress.update,
      });
      progress.done();
      if (values.json) io.stdout(JSON.stringify(report) + "\n");
      else printReport(io, report);
      if (interrupt.signal.aborted) break;
    }
  } catch (error) {
    progress.done();
    if (!interrupt.signal.aborted) throw error;
    // The removal's own failure says what is left; a plain abort left nothing.
    const left = error instanceof TesseraError ? `: ${error.message}` : "";
    io.stderr(`tessera: interrupted while measuring ${store?.description ?? "the store"}${left}\n`);
    return EXIT_INTERRUPTED;
  } finally {
    process.off("SIGINT", onInt);
  }
  return interrupt.signal.aborted ? EXIT_INTERRUPTED : EXIT.ok;
}

/** One progress line per row, replaced as rows change. */
function progressLine(
  io: CliIo,
): { update: (label: string, done: number, total: number) => void; done(): void } {
  let current: { label: string; printer: Progress } | undefined;
  return {
    update(label, done, total) {
      if (current?.label !== label) {
        current?.printer.done();
        current = { label, printer: progressPrinter(io, label) };
      }
      current.printer.update(done, total);
    },
    done() {
      current?.printer.done();
      current = undefined;
    },
  };
}

function printReport(io: CliIo, report: StoreBenchReport): void {
  io.stdout(
    report.key === null
      ? `${report.store}: ${report.objectsWritten} objects written under ${report.prefix}, all removed\n`
      : `${report.store}: reading "${report.key}", nothing written\n`,
  );
  const header = [
    "op",
    "object",
    "request",
    "conc",
    "requests",
    "MB/s",
    "req/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
  ];
  const lines = report.rows.map((r) => [
    r.op,
    formatBytes(r.objectBytes),
    r.requestBytes > 0 ? formatBytes(r.requestBytes) : "-",
    String(r.concurrency),
    String(r.requests),
    r.requestBytes > 0 ? r.mbPerSec.toFixed(1) : "-",
    r.requestsPerSec.toFixed(1),
    r.latencyMs.p50.toFixed(2),
    r.latencyMs.p90.toFixed(2),
    r.latencyMs.p99.toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  // The op is left-aligned, the numbers right-aligned.
  const format = (cells: string[]) =>
    cells.map((c, i) => i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)).join("  ")
      .trimEnd() + "\n";
  io.stdout(format(header));
  for (const line of lines) io.stdout(format(line));
  for (const warning of report.warnings) io.stdout(`note: ${warning}\n`);
  const chosen = report.rows.find((r) =>
    r.op === report.recommendedFrom && r.concurrency === report.recommendedConcurrency
  );
  if (!chosen) return;
  const best = report.rows.filter((r) => r.op === report.recommendedFrom)
    .reduce((a, b) => (b.mbPerSec > a.mbPerSec ? b : a));
  const what = chosen.op === "range" ? `ranged GETs of ${formatBytes(chosen.requestBytes)}` : "whole GETs";
  const than = chosen === best
    ? "the best measured"
    : `within ${RECOMMEND_TOLERANCE * 100}% of the best, ${
      best.mbPerSec.toFixed(1)
    } MB/s at ${best.concurrency}`;
  io.stdout(
    `recommended restore concurrency: ${chosen.concurrency} (${what}: ${chosen.mbPerSec.toFixed(1)} MB/s, ` +
      `${than})\n`,
  );
}

/** The sorted, distinct values of a comma-separated option. */
function listOption(option: string, text: string, parse: (option: string, part: string) => number): number[] {
  const parts = text.split(",").map((p) => p.trim());
  if (parts.some((p) => p === "")) {
    throw new UsageError(`${option}: "${text}" has an empty item; give a list such as 1,8,32`);
  }
  return [...new Set(parts.map((p) => parse(option, p)))].sort((a, b) => a - b);
}

function parseSize(option: string, part: string): number {
  return sizeOption(option, part, MAX_SIZE);
}

function parseConcurrency(option: string, part: string): number {
  const n = /^\d+$/.test(part) ? Number(part) : NaN;
  if (!(n >= 1 && n <= MAX_CONCURRENCY)) {
    throw new UsageError(`${option}: "${part}" is not a whole number from 1 to ${MAX_CONCURRENCY}`);
  }
  return n;
}
