/**
 * Finding a running replicator from another process: the options `tessera status` and `tessera flush`
 * share, the spool directory they name, and the databases' stored names.
 *
 * @module
 */

import { resolve } from "node:path";
import { deriveName } from "../manifest/naming.ts";
import { defaultSpoolDir } from "../write/spool.ts";
import { commandContext, localHostname } from "./_common.ts";
import type { CliIo } from "./_io.ts";

/** The `parseArgs` options of the commands that talk to a replicator through its spool directory. */
export const REPLICATOR_OPTIONS = {
  name: { type: "string" },
  hostname: { type: "string" },
  spool: { type: "string" },
  config: { type: "string", short: "c" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

/** The spool directory: `--spool`, else the config's `spool_dir` (from `-c` or `TESSERA_CONFIG`), else the default. */
export async function spoolOf(
  values: { spool?: string | undefined; config?: string | undefined },
  io: CliIo,
): Promise<string> {
  if (values.spool) return resolve(values.spool);
  if (values.config || io.env.TESSERA_CONFIG) {
    const context = await commandContext({ config: values.config, store: ["."] }, io).catch(() => undefined);
    if (context?.config.spoolDir) return context.config.spoolDir;
  }
  return defaultSpoolDir();
}

/** The stored names of the databases the command names: `--name`, else each DB's derived name. */
export async function namesFor(
  values: { name?: string | undefined; hostname?: string | undefined },
  positionals: string[],
  io: CliIo,
): Promise<string[]> {
  if (values.name) return [values.name];
  const hostname = values.hostname ?? localHostname(io.env);
  return await Promise.all(positionals.map((db) => deriveName(hostname, resolve(db))));
}
