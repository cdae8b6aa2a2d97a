/**
 * `tessera restore`: rebuild a database file from a snapshot, verified, written atomically.
 *
 * @module
 */

import { mkdir, rename, unlink } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { restoreImage } from "../restore/restore.ts";
import {
  chunkSourceFor,
  commandContext,
  DATABASE_OPTIONS,
  exists,
  findManifest,
  STORE_OPTIONS,
  STORE_OPTIONS_HELP,
} from "./_common.ts";
import { type CliIo, EXIT, UsageError } from "./_io.ts";
import { progressPrinter } from "./_progress.ts";
import { directoryContext } from "./_snapshot_dir.ts";

/** `tessera restore --help`. */
export const RESTORE_HELP =
  `Usage: tessera restore (--source-path PATH [--hostname HOST] | --name NAME | --source URL
                        | --manifest FILE|KEY) --out FILE [options]
       tessera restore DIR [--name NAME] --out NEWROOT/FILE [options]

Rebuild a database from its newest snapshot (or --sequence N), fetching chunks in parallel through
the local cache, checking every chunk against its id and the whole image against the manifest, into
a temporary file that is renamed to FILE only once everything checks out. FILE's parent directories
are created. DIR is a snapshot directory (tessera snapshot DB DIR): the store read, alone; its one
database is chosen unless it holds several.

Options:
  --source-path PATH   the database's path on the host it was synced from
  --hostname HOST      that host (default: this machine, or $TESSERA_HOSTNAME)
  --name NAME          the database's name in the store (as printed by tessera sync)
  --source URL         tessera://host/abs/path, tessera:///abs/path, or a name
  --manifest FILE|KEY  restore the snapshot in this manifest file, or at this key in the store
  --sequence N         restore snapshot N of the database's history instead of the newest
  --at TIME            restore the newest snapshot taken at or before TIME: ISO 8601
                       (2024-05-01T12:00:00Z; without a zone, local time) or a duration ago (2h, 7d)
  -o, --out FILE       the file to write
  --force              replace FILE if it exists, with any -wal, -shm or -journal beside it (SQLite
                       would apply a leftover log to the restored file, so restore refuses without it)
  --concurrency N      requests in flight at once (default 8): each reads a run of neighbouring chunks
                       in a pack (up to 2 MiB), or one chunk kept as its own object
${STORE_OPTIONS_HELP}

Exit codes: 0 restored, 1 failed (nothing written), 2 bad usage, 3 no such database or snapshot.
`;

/** Runs `tessera restore`. */
export async function restoreCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...STORE_OPTIONS,
      ...DATABASE_OPTIONS,
      manifest: { type: "string" },
      sequence: { type: "string" },
      at: { type: "string" },
      out: { type: "string", short: "o" },
      force: { type: "boolean", default: false },
      concurrency: { type: "string" },
    },
  });
  if (values.help) {
    io.stdout(RESTORE_HELP);
    return EXIT.ok;
  }
  if (!values.out) throw new UsageError("restore: give the file to write with --out FILE");
  const out = resolve(values.out);
  if (!values.force && await exists(out)) {
    throw new UsageError(`restore: "${out}" exists; pass --force to replace it`);
  }
  // SQLite would replay a leftover -wal (or -journal) over the restored file: they go with the old file.
  const sidecars = [];
  for (const suffix of SIDECARS) if (await exists(out + suffix)) sidecars.push(out + suffix);
  if (sidecars.length > 0 && !values.force) {
    throw new UsageError(
      `restore: "${sidecars[0]}" exists and SQLite would apply it to the restored database; ` +
        "remove it, or pass --force to replace the database and its journal files",
    );
  }
  const concurrency = values.concurrency === undefined ? 8 : Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new UsageError("restore: --concurrency takes a whole number ≥ 1");
  }
  const context = await directoryContext(positionals, values) ?? await commandContext(values, io);
  const { loaded, store } = await findManifest(values, context, io);
  const progress = progressPrinter(io, `restore ${loaded.manifest.identity.name}`);
  const chunkSize = loaded.manifest.chunkSize;
  await mkdir(dirname(out), { recursive: true });
  const aside = await moveAside(sidecars);
  let result;
  try {
    result = await restoreImage({
      manifest: loaded.manifest,
      chunks: chunkSourceFor(context, store),
      out,
      concurrency,
      onProgress: (done, total) => progress.update(done * chunkSize, total * chunkSize),
    });
  } catch (error) {
    await Promise.all(aside.map(([from, to]) => rename(to, from).catch(() => {})));
    throw error;
  }
  await Promise.all(aside.map(([, to]) => unlink(to).catch(() => {})));
  progress.done();
  const report = {
    name: loaded.manifest.identity.name,
    sequence: loaded.manifest.sequence,
    out,
    bytes: result.bytes,
    chunksFetched: result.chunksFetched,
    objects: result.objects,
    requests: result.requests,
    sha256: result.sha256,
    imageVerified: result.imageVerified,
    digestVerified: result.digestVerified,
  };
  if (values.json) io.stdout(JSON.stringify(report) + "\n");
  else {
    io.stdout(`${out}\n`);
    io.stderr(
      `restored ${report.name} sequence ${report.sequence}: ${report.bytes} bytes, sha256 ${report.sha256}` +
        `${report.imageVerified ? " (matches the manifest)" : " (every chunk verified)"}` +
        `${report.digestVerified ? ", image digest verified" : ""}; ${report.chunksFetched} chunks in ` +
        `${report.requests} requests from ${report.objects} objects\n`,
    );
  }
  return EXIT.ok;
}

const SIDECARS = ["-wal", "-shm", "-journal"];

// Renamed rather than deleted, so a failed restore can put the old database back exactly as it was.
async function moveAside(paths: string[]): Promise<[string, string][]> {
  const moved: [string, string][] = [];
  for (const path of paths) {
    const to = `${path}.tessera-replaced-${crypto.randomUUID().slice(0, 8)}`;
    await rename(path, to);
    moved.push([path, to]);
  }
  return moved;
}
