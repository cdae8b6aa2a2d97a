/**
 * What `tessera query` and `tessera shell` share: the options that choose a database and open a read
 * replica of it.
 *
 * @module
 */

import type { IntMode } from "@libsql/core/api";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { TesseraError } from "../errors.ts";
import { resolveSnapshot } from "../manifest/catalog.ts";
import { parseManifestKey } from "../manifest/keys.ts";
import { deriveName, parseSource } from "../manifest/naming.ts";
import { openReplica, type ReplicaSource } from "../config/replica.ts";
import type { FreshnessOptions, Replica } from "../replica/replica.ts";
import type { BlobStore } from "../store/types.ts";
import {
  commandContext,
  DATABASE_OPTIONS,
  exists,
  localHostname,
  STORE_OPTIONS,
  warnSkipped,
} from "./_common.ts";
import { type CliIo, UsageError } from "./_io.ts";
import { sizeOption } from "./_values.ts";

/** Options of the commands that open a replica. */
export const REPLICA_OPTIONS = {
  ...STORE_OPTIONS,
  ...DATABASE_OPTIONS,
  manifest: { type: "string" },
  sequence: { type: "string" },
  engine: { type: "string" },
  "int-mode": { type: "string" },
  cache: { type: "string" },
  load: { type: "string" },
  memory: { type: "string" },
} as const;

/** The help lines for the database-choosing part of {@linkcode REPLICA_OPTIONS}. */
export const REPLICA_OPTIONS_HELP =
  `  SOURCE               the database: its name, tessera://host/abs/path, tessera:///abs/path (this
                       host), a manifest key, or a manifest file (a path holding "/")
  --name NAME          instead of SOURCE: the database's name in the store (as printed by tessera sync)
  --source-path PATH   instead of SOURCE: the database's path on the host it was synced from
  --hostname HOST      that host, and the host tessera:///path means (default: this machine, or
                       $TESSERA_HOSTNAME)
  --source URL         instead of SOURCE: tessera://host/abs/path, tessera:///abs/path, or a name
  --manifest FILE|KEY  instead of SOURCE: read the snapshot in this manifest file, or at this key
  --sequence N         read snapshot N of the database's history instead of the newest
  --engine E           wasm (default: SQLite in WebAssembly, pages in memory) or native (@libsql/client
                       on a local copy of the snapshot)
  --int-mode M         how integers are read: bigint (default; exact), string, or number (an integer
                       beyond ±(2^53 - 1) then fails the statement)
  --load MODE          wasm engine: lazy (fetch the chunks each query needs; opens in milliseconds
                       whatever the size), eager (fetch everything first), or auto (default: eager up
                       to 16 MiB, lazy above)
  --memory SIZE        wasm engine: the most chunk bytes held in memory (default 64m; k, m, g)
  --cache DIR          keep fetched chunks in DIR (default: the config's cache, if any)`;

/** Parsed {@linkcode REPLICA_OPTIONS}. */
export interface ReplicaValues {
  config?: string | undefined;
  store?: string[] | undefined;
  name?: string | undefined;
  hostname?: string | undefined;
  "source-path"?: string | undefined;
  source?: string | undefined;
  manifest?: string | undefined;
  sequence?: string | undefined;
  engine?: string | undefined;
  "int-mode"?: string | undefined;
  cache?: string | undefined;
  load?: string | undefined;
  memory?: string | undefined;
}

/** True when an option, rather than the first positional argument, names the database. */
export function sourceInOptions(values: ReplicaValues): boolean {
  return [values.name, values.source, values["source-path"], values.manifest].some((v) => v !== undefined);
}

/**
 * Opens a read replica of the database the options (or `positional`, the SOURCE argument) name, through
 * the stores of `--store`, `-c` and `$TESSERA_CONFIG`. Never writes to a store.
 */
export async function openReplicaFor(
  command: string,
  values: ReplicaValues,
  positional: string | undefined,
  io: CliIo,
  freshness: Omit<FreshnessOptions, "intMode">,
): Promise<Replica> {
  const named = [positional, values.name, values.source, values["source-path"], values.manifest]
    .filter((v) => v !== undefined);
  if (named.length !== 1) {
    throw new UsageError(
      `${command}: name one database: SOURCE, --name NAME, --source URL, --source-path PATH or ` +
        "--manifest FILE|KEY",
    );
  }
  const engine = values.engine ?? "wasm";
  if (engine !== "wasm" && engine !== "native") {
    throw new UsageError(`${command}: --engine is wasm or native, not "${engine}"`);
  }
  const load = values.load ?? "auto";
  if (load !== "auto" && load !== "lazy" && load !== "eager") {
    throw new UsageError(`${command}: --load is lazy, eager or auto, not "${load}"`);
  }
  if (engine === "native" && load === "lazy") {
    throw new UsageError(`${command}: --load lazy needs --engine wasm (the native engine reads whole files)`);
  }
  const memoryCacheBytes = values.memory === undefined
    ? undefined
    : sizeOption("--memory", values.memory, undefined, 0);
  const intMode = values["int-mode"] ?? "bigint";
  if (intMode !== "bigint" && intMode !== "string" && intMode !== "number") {
    throw new UsageError(`${command}: --int-mode is bigint, string or number, not "${intMode}"`);
  }
  const hostname = values.hostname ?? localHostname(io.env);
  const context = await commandContext(values, io);
  let source = await sourceFor(values, positional, hostname);
  if (values.sequence !== undefined) {
    source = await pinned(command, values.sequence, source, context.readable, hostname, io);
  }
  const rawConfig = values.config ?? (io.env.TESSERA_CONFIG || undefined);
  try {
    return await openReplica(source, {
      engine,
      load,
      memoryCacheBytes,
      store: context.readable,
      config: rawConfig,
      env: io.env,
      hostname,
      cacheDirectory: values.cache === undefined ? undefined : resolve(values.cache),
      intMode: intMode as IntMode,
      onSkippedStore: ({ error }) => warnSkipped(io, error),
      ...freshness,
    });
  } catch (error) {
    throw await withHint(error, positional);
  }
}

async function sourceFor(
  values: ReplicaValues,
  positional: string | undefined,
  hostname: string,
): Promise<ReplicaSource> {
  if (values.name !== undefined) return values.name;
  if (values.source !== undefined) return values.source;
  if (values["source-path"] !== undefined) return await deriveName(hostname, resolve(values["source-path"]));
  if (values.manifest !== undefined) {
    if (await exists(values.manifest)) return new Uint8Array(await readFile(values.manifest));
    if (parseManifestKey(values.manifest)) return values.manifest;
    throw new TesseraError(
      "NOT_FOUND",
      `Cannot find manifest "${values.manifest}": no such file, and not a manifest key (dbs/NAME/manifests/…)`,
    );
  }
  return positional as string;
}

// A pinned replica: the manifest of snapshot N, read from the first store that has it.
async function pinned(
  command: string,
  sequenceText: string,
  source: ReplicaSource,
  stores: readonly BlobStore[],
  hostname: string,
  io: CliIo,
): Promise<Uint8Array> {
  const sequence = Number(sequenceText);
  if (!Number.isSafeInteger(sequence) || sequence < 1) {
    throw new UsageError(`${command}: --sequence takes a whole number ≥ 1`);
  }
  if (
    typeof source !== "string" || parseManifestKey(source) ||
    source.includes("/") && !source.startsWith("tessera://")
  ) {
    throw new UsageError(`${command}: --sequence needs a database, not a manifest`);
  }
  const { name } = await parseSource(source, { hostname });
  const { loaded, skipped } = await resolveSnapshot(stores, { name, sequence });
  for (const { error } of skipped) warnSkipped(io, error);
  return loaded.manifestBytes;
}

// "tessera query app.db ..." most likely means the local file app.db: say how to name its replica.
async function withHint(error: unknown, positional: string | undefined): Promise<unknown> {
  if (
    positional === undefined || !(error instanceof TesseraError) || error.code !== "NOT_FOUND" ||
    !(await exists(positional))
  ) {
    return error;
  }
  return new TesseraError(
    "NOT_FOUND",
    `${error.message}. "${positional}" is a local file: to read the replica of the database synced from ` +
      `it, pass --source-path ${positional}`,
    { cause: error },
  );
}
