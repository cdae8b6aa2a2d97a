/**
 * `tessera sync DB...`: publish one snapshot of each database to every configured store.
 *
 * @module
 */

import { createClient } from "@libsql/client";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { defaultSpoolDir } from "../write/spool.ts";
import { syncDatabase, type SyncReport } from "../write/sync.ts";
import { commandContext, localHostname, STORE_OPTIONS, STORE_OPTIONS_HELP } from "./_common.ts";
import { type CliIo, EXIT, UsageError } from "./_io.ts";
import { progressPrinter } from "./_progress.ts";

/** `tessera sync --help`. */
export const SYNC_HELP = `Usage: tessera sync DB [DB...] [options]

Publish a consistent snapshot of each SQLite database (rollback-journal or WAL mode, while other
processes write) to every store: chunks the store lacks, then a manifest, then the pointer. Prints
each database's name, which restore and replicas use to find it.

Options:
  --name NAME          store the database under NAME instead of the name derived from host and path
  --hostname HOST      the host name used in the derived name (default: this machine, or $TESSERA_HOSTNAME)
  --chunk-size BYTES   chunk size, a power of two from 4096 to 1048576 (default 65536)
  --spool DIR          where the record of the last sync lives (default: config spool_dir, or
                       $TMPDIR/tessera-spool-UID); losing it only costs a full read next time
  --full               read and hash the whole database even when the record proves what changed, and
                       ask each store about every object the previous snapshot keeps data in (one
                       request per pack): what a store lost is written again
  --optimize           first set 64 KiB pages and VACUUM: this REWRITES the database file in place
                       (while it runs, writers wait); fewer, larger chunks afterwards
${STORE_OPTIONS_HELP}

Exit codes: 0 done, 1 failed, 2 bad usage, 3 database not found.
`;

/** Runs `tessera sync`. */
export async function syncCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...STORE_OPTIONS,
      name: { type: "string" },
      hostname: { type: "string" },
      "chunk-size": { type: "string" },
      spool: { type: "string" },
      full: { type: "boolean", default: false },
      optimize: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    io.stdout(SYNC_HELP);
    return EXIT.ok;
  }
  if (positionals.length === 0) throw new UsageError("sync: give the database file to sync");
  if (values.name && positionals.length > 1) {
    throw new UsageError("sync: --name names one database; give one DB");
  }
  const chunkSize = values["chunk-size"] === undefined ? undefined : Number(values["chunk-size"]);
  if (chunkSize !== undefined && !Number.isInteger(chunkSize)) {
    throw new UsageError(`sync: --chunk-size "${values["chunk-size"]}" is not a whole number of bytes`);
  }
  const context = await commandContext(values, io);
  if (context.stores.length === 0) {
    throw new UsageError("sync: no writable store: give --store or a config target");
  }
  const reports: SyncReport[] = [];
  for (const db of positionals) {
    if (values.optimize) await optimize(resolve(db));
    const progress = progressPrinter(io, `sync ${db}`);
    const report = await syncDatabase(db, {
      stores: context.stores,
      hostname: values.hostname ?? localHostname(io.env),
      name: values.name,
      chunkSize: chunkSize ?? context.config.chunkSize,
      spoolDir: values.spool ?? context.config.spoolDir ?? defaultSpoolDir(),
      full: values.full,
      onProgress: progress.update,
      onWait: (message) => io.stderr(`tessera: ${message.replace(/^Cannot sync /, "waiting to sync ")}\n`),
    });
    progress.done();
    reports.push(report);
    if (values.json) io.stdout(JSON.stringify({ database: resolve(db), ...report }) + "\n");
    else io.stdout(`${report.name}\n`);
    if (!values.json) io.stderr(describe(report));
    for (const warning of report.warnings) if (!values.json) io.stderr(`tessera: warning: ${warning}\n`);
  }
  return EXIT.ok;
}

function describe(r: SyncReport): string {
  if (r.noop) return `unchanged since sequence ${r.sequence}: nothing uploaded\n`;
  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  return `sequence ${r.sequence}: ${r.chunks.uploaded} of ${r.chunks.total} chunks uploaded ` +
    `(${kib(r.bytes.data)} data, ${kib(r.bytes.manifest)} manifest), ${r.chunks.read} read\n`;
}

// WAL mode cannot change the page size, so the journal mode is switched off and back around the VACUUM.
async function optimize(file: string): Promise<void> {
  const db = createClient({ url: `file:${file}` });
  try {
    await db.execute("PRAGMA busy_timeout = 30000");
    const mode = String((await db.execute("PRAGMA journal_mode")).rows[0]?.[0]);
    if (mode === "wal") await db.execute("PRAGMA journal_mode = DELETE");
    await db.execute("PRAGMA page_size = 65536");
    await db.execute("VACUUM");
    if (mode === "wal") await db.execute("PRAGMA journal_mode = WAL");
  } finally {
    db.close();
  }
}
