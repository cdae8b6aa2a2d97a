/**
 * `tessera gc`: delete the chunks no kept snapshot references, after a grace period.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { formatDuration } from "../history/duration.ts";
import { checkGrace, collectGarbage, type GarbageReport } from "../history/gc.ts";
import { CHUNK_REUSE_WINDOW_MS, DEFAULT_GC_GRACE_MS, MIN_GC_GRACE_MS } from "../write/reuse.ts";
import { commandContext, STORE_OPTIONS, STORE_OPTIONS_HELP } from "./_common.ts";
import { type CliIo, EXIT, UsageError } from "./_io.ts";
import { writableStores } from "./_selection.ts";
import { durationOption } from "./_values.ts";

/** `tessera gc --help`. */
export const GC_HELP = `Usage: tessera gc [--grace DURATION] [--dry-run] [options]

Delete, in every writable store, the chunk objects that no manifest of any database references and
that the store wrote longer ago than the grace period. Safe while syncs run: a sync relies on a
chunk it finds only when the store wrote it in the last ${
  formatDuration(CHUNK_REUSE_WINDOW_MS)
}, and writes older ones again;
each chunk is looked at again right before it is deleted (docs/HISTORY.md). Chunks whose store
reports no modification time, and keys under chunks/ that are not chunks, are never deleted.
Run "tessera prune" first to drop old snapshots.

Options:
  --grace DURATION     only delete chunks older than this (default ${
  formatDuration(DEFAULT_GC_GRACE_MS)
}, at least ${formatDuration(MIN_GC_GRACE_MS)}):
                       it must exceed 15m plus twice the longest sync
  --dry-run            list what would be deleted (keys, count, bytes), and delete nothing
${STORE_OPTIONS_HELP}

Exit codes: 0 done, 1 failed (a manifest or index chunk could not be read: nothing is deleted),
2 bad usage.
`;

/** Runs `tessera gc`. */
export async function gcCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...STORE_OPTIONS,
      grace: { type: "string" },
      "dry-run": { type: "boolean", default: false },
    },
  });
  if (values.help) {
    io.stdout(GC_HELP);
    return EXIT.ok;
  }
  const graceMs = durationOption("--grace", values.grace) ?? DEFAULT_GC_GRACE_MS;
  try {
    checkGrace(graceMs);
  } catch (error) {
    throw new UsageError(`--grace: ${(error as Error).message}`);
  }
  const context = await commandContext(values, io);
  for (const store of writableStores(context.stores, "gc")) {
    const report = await collectGarbage(store, { graceMs, dryRun: values["dry-run"] });
    if (values.json) io.stdout(JSON.stringify(report) + "\n");
    else print(io, report);
  }
  return EXIT.ok;
}

function print(io: CliIo, report: GarbageReport): void {
  const { chunks, deleted, kept } = report;
  const verb = report.dryRun ? "would delete" : "deleted";
  // A dry run is read to decide; a real run's keys are in --json.
  if (report.dryRun) {
    for (const chunk of deleted.chunks) {
      io.stdout(`${verb}  ${chunk.key}  ${chunk.size} bytes  ${chunk.lastModified}\n`);
    }
  }
  io.stdout(
    `${report.store}: ${report.databases} databases, ${report.manifests} manifests, ${chunks.listed} chunks ` +
      `(${chunks.referenced} referenced); ${verb} ${deleted.count} chunks, ${deleted.bytes} bytes` +
      `${report.dryRun ? " (dry run: nothing deleted)" : ""}\n`,
  );
  const notes: string[] = [];
  if (kept.young > 0) {
    notes.push(`${kept.young} unreferenced chunks are younger than ${formatDuration(report.graceMs)}`);
  }
  if (kept.noTime > 0) {
    notes.push(
      `${kept.noTime} unreferenced chunks were kept: the store reports no modification time for them`,
    );
  }
  if (kept.slow > 0) {
    notes.push(`${kept.slow} chunks were kept: the store answered too slowly to delete them safely`);
  }
  if (report.foreign.length > 0) {
    notes.push(`${report.foreign.length} keys under chunks/ are not chunks and were left alone`);
  }
  if (chunks.missing > 0) {
    notes.push(
      `${chunks.missing} referenced chunks are MISSING from the store: some snapshots cannot be restored`,
    );
  }
  for (const note of notes) io.stdout(`  ${note}\n`);
}
