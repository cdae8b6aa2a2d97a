/**
 * `tessera manifest`: show a snapshot's manifest, or save it to a file for `restore --manifest`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { toHex } from "../bytes.ts";
import { idToHex } from "../chunk/ids.ts";
import { chunkListIndexIds } from "../manifest/chunk_list.ts";
import { loadManifestFile } from "../manifest/manifest_file.ts";
import type { Manifest } from "../manifest/types.ts";
import { writeFileAtomic } from "../files.ts";
import {
  commandContext,
  DATABASE_OPTIONS,
  findManifest,
  STORE_OPTIONS,
  STORE_OPTIONS_HELP,
} from "./_common.ts";
import { type CliIo, EXIT } from "./_io.ts";

/** `tessera manifest --help`. */
export const MANIFEST_HELP =
  `Usage: tessera manifest (--source-path PATH [--hostname HOST] | --name NAME | --source URL
                         | --file FILE) [--sequence N] [--out FILE] [options]

Show the newest manifest of a database (or snapshot --sequence N): its identity, sequence, times,
sizes, chunk list and image hash. With --out, save the manifest object itself, byte for byte, to a
file that "tessera restore --manifest FILE" reads.

Options:
  --source-path PATH, --hostname HOST, --name NAME, --source URL   the database, as for restore
  --file FILE          read a saved manifest file instead of a store
  --sequence N         that snapshot instead of the newest
  -o, --out FILE       save the manifest object to FILE
${STORE_OPTIONS_HELP}

Exit codes: 0 done, 1 failed, 2 bad usage, 3 no such database or snapshot.
`;

/** Runs `tessera manifest`. */
export async function manifestCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...STORE_OPTIONS,
      ...DATABASE_OPTIONS,
      file: { type: "string" },
      sequence: { type: "string" },
      out: { type: "string", short: "o" },
    },
  });
  if (values.help) {
    io.stdout(MANIFEST_HELP);
    return EXIT.ok;
  }
  const loaded = values.file
    ? await loadManifestFile(values.file)
    : (await findManifest(values, await commandContext(values, io), io)).loaded;
  if (values.out) await writeFileAtomic(values.out, loaded.manifestBytes);
  const shown = describeManifest(loaded.manifest, loaded.key);
  if (values.json) io.stdout(JSON.stringify(shown) + "\n");
  else {io.stdout(
      Object.entries(shown).filter(([k]) => k !== "chunkIds").map(([k, v]) =>
        `${k}: ${Array.isArray(v) ? v.join(" ") : v}`
      ).join("\n") + "\n",
    );}
  return EXIT.ok;
}

/** The manifest as plain JSON-friendly fields. */
export function describeManifest(m: Manifest, key: string): Record<string, unknown> {
  const zeroHash = m.imageSha256.every((b) => b === 0);
  return {
    key,
    version: m.version ?? 1,
    name: m.identity.name,
    hostname: m.identity.hostname,
    sourcePath: m.identity.sourcePath,
    sequence: m.sequence,
    created: new Date(m.createdMs).toISOString(),
    sourceModified: new Date(m.sourceMtimeMs).toISOString(),
    pageSize: m.pageSize,
    imageLength: m.imageLength,
    chunkSize: m.chunkSize,
    chunks: Math.max(1, Math.ceil(m.imageLength / m.chunkSize)),
    imageSha256: zeroHash ? null : toHex(m.imageSha256),
    imageDigest: m.imageDigest ? toHex(m.imageDigest) : null,
    chunkList: m.chunks.kind,
    indexChunks: chunkListIndexIds(m.chunks).map(idToHex),
    ...(m.chunks.kind === "inline" ? { chunkIds: m.chunks.ids.map(idToHex) } : {}),
  };
}
