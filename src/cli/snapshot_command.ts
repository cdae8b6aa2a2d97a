/**
 * `tessera snapshot DB DIR`: checkpoint a live database into a directory on any mounted filesystem, in
 * the local-directory store layout (`tessera restore DIR` reads one back: `_snapshot_dir.ts`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { loadConfig } from "../config/load.ts";
import { type DirectorySnapshotReport, snapshotToDirectory } from "../snapshot/directory.ts";
import { defaultSpoolDir } from "../write/spool.ts";
import { localHostname } from "./_common.ts";
import { type CliIo, EXIT, UsageError } from "./_io.ts";
import { progressPrinter } from "./_progress.ts";

/** `tessera snapshot --help`. */
export const SNAPSHOT_HELP =
  `Usage: tessera snapshot DB DIR [--name NAME] [--verify] [--remove-source] [--json]

Write a self-contained snapshot of the live SQLite database DB into the directory DIR (created if
missing) on any mounted filesystem: chunk files, a manifest and a pointer, in the same layout as a
--store directory. Restore it with "tessera restore DIR --out NEWROOT/app.db"; copy or move DIR as a
whole. Writers wait only while the consistent view is copied: for the whole copy in rollback-journal
mode, not at all in WAL mode. See docs/SNAPSHOTS.md.

Options:
  --name NAME          store the database under NAME instead of the name derived from host and path
  --hostname HOST      the host name used in the derived name (default: this machine, or $TESSERA_HOSTNAME)
  --chunk-size BYTES   chunk size, a power of two from 4096 to 1048576 (default 65536)
  --spool DIR          where the record of the last sync lives (default: config spool_dir, or
                       $TMPDIR/tessera-spool-UID)
  --verify             read the snapshot back from DIR: every chunk against its id, the whole image
                       against the SHA-256 of the database as read
  --remove-source      after a verified snapshot, remove DB and its -wal, -shm and -journal, but only
                       when, under a write lock, DB still holds exactly the snapshot's bytes; refuses
                       (and removes nothing) when another connection is writing or DB changed
  -c, --config CONFIG  read chunk_size and spool_dir from this config
  --json               print a JSON report
  -h, --help           show this help

Exit codes: 0 snapshot written (verified, source removed, as asked), 1 failed (the source is kept),
2 bad usage, 3 DB not found.
`;

/** Runs `tessera snapshot`. */
export async function snapshotCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      name: { type: "string" },
      hostname: { type: "string" },
      "chunk-size": { type: "string" },
      spool: { type: "string" },
      verify: { type: "boolean", default: false },
      "remove-source": { type: "boolean", default: false },
      config: { type: "string", short: "c" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    io.stdout(SNAPSHOT_HELP);
    return EXIT.ok;
  }
  const [db, dir, ...extra] = positionals;
  if (db === undefined || dir === undefined) {
    throw new UsageError("snapshot: give the database file and the directory: tessera snapshot DB DIR");
  }
  if (extra.length > 0) throw new UsageError(`snapshot: unexpected argument "${extra[0]}"`);
  const chunkSize = values["chunk-size"] === undefined ? undefined : Number(values["chunk-size"]);
  if (chunkSize !== undefined && !Number.isInteger(chunkSize)) {
    throw new UsageError(`snapshot: --chunk-size "${values["chunk-size"]}" is not a whole number of bytes`);
  }
  const config = await loadConfig({ arg: values.config, env: io.env });
  const progress = progressPrinter(io, `snapshot ${db}`);
  const report = await snapshotToDirectory(db, dir, {
    hostname: values.hostname ?? localHostname(io.env),
    name: values.name,
    chunkSize: chunkSize ?? config.chunkSize,
    spoolDir: values.spool ?? config.spoolDir ?? defaultSpoolDir(),
    verify: values.verify,
    removeSource: values["remove-source"],
    onProgress: progress.update,
  });
  progress.done();
  if (values.json) io.stdout(JSON.stringify(report) + "\n");
  else {
    io.stdout(`${report.directory}\n`);
    io.stderr(describe(report));
    for (const warning of report.warnings) io.stderr(`tessera: warning: ${warning}\n`);
  }
  return EXIT.ok;
}

function describe(r: DirectorySnapshotReport): string {
  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  let text = `${r.name} sequence ${r.sequence}: ${r.imageLength} bytes, sha256 ${r.imageSha256}; ` +
    `${r.chunks.uploaded} of ${r.chunks.total} chunks written (${kib(r.bytes.data)})\n`;
  if (r.verified) text += `verified: ${r.verified.chunksRead} chunk files read back, image SHA-256 matches\n`;
  if (r.removed.length > 0) text += `removed ${r.removed.join(", ")}\n`;
  return text;
}
