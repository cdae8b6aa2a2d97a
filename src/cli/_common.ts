/**
 * What several commands share: the config and stores they act on, and how a database is named.
 *
 * @module
 */

import { stat } from "node:fs/promises";
import { hostname as osHostname } from "node:os";
import { resolve } from "node:path";
import type { ChunkSource } from "../chunk/source.ts";
import { loadConfig } from "../config/load.ts";
import { chunkSourceFor as chunkSourceForConfig, openTarget } from "../config/stores.ts";
import type { TesseraConfig } from "../config/types.ts";
import { TesseraError } from "../errors.ts";
import { type LoadedManifest, resolveSnapshot } from "../manifest/catalog.ts";
import { decodeManifest } from "../manifest/codec.ts";
import { loadManifestFile } from "../manifest/manifest_file.ts";
import { deriveName, parseSource } from "../manifest/naming.ts";
import { parseDuration } from "../history/duration.ts";
import type { BlobStore } from "../store/types.ts";
import { type CliIo, UsageError } from "./_io.ts";

/** Options every store-using command takes. */
export const STORE_OPTIONS = {
  config: { type: "string", short: "c" },
  store: { type: "string", multiple: true },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

/** Options that name one database, as {@linkcode databaseName} reads them. */
export const DATABASE_OPTIONS = {
  name: { type: "string" },
  hostname: { type: "string" },
  "source-path": { type: "string" },
  source: { type: "string" },
} as const;

/** The help lines for {@linkcode STORE_OPTIONS}. */
export const STORE_OPTIONS_HELP =
  `  -c, --config CONFIG  a JSON file, @file, or inline JSON (default: $TESSERA_CONFIG); see docs/CONFIG.md
  --store STORE        a store to use: s3://bucket/prefix, file:///dir or a directory (repeatable)
  --json               print JSON
  -h, --help           show this help`;

/** The loaded config and its writable stores. */
export interface CommandContext {
  config: TesseraConfig;
  /** Writable targets, in order. */
  stores: BlobStore[];
  /** Every store that can be read from: writable targets, then read-only ones. */
  readable: BlobStore[];
}

/** Loads the config from `-c`, `TESSERA_CONFIG` and `--store`, and opens its stores. */
export async function commandContext(
  values: { config?: string | undefined; store?: string[] | undefined },
  io: CliIo,
): Promise<CommandContext> {
  const config = await loadConfig({ arg: values.config, env: io.env, stores: values.store ?? [] });
  const stores = config.targets.map((t) => openTarget(t, io.env));
  const readable = [...stores, ...config.readOnly.map((t) => openTarget(t, io.env))];
  if (readable.length === 0) {
    throw new UsageError(
      "no store given: pass --store s3://bucket/prefix or --store ./dir, or a config with -c",
    );
  }
  return { config, stores, readable };
}

/** This machine's host name, as database names use it. */
export function localHostname(env: Record<string, string | undefined>): string {
  return env.TESSERA_HOSTNAME || osHostname();
}

/** Chooses the database a read command acts on, from its options. */
export async function databaseName(
  values: {
    name?: string | undefined;
    hostname?: string | undefined;
    "source-path"?: string | undefined;
    source?: string | undefined;
  },
  io: CliIo,
): Promise<string> {
  if (values.name) return values.name;
  if (values.source) return (await parseSource(values.source, { hostname: localHostname(io.env) })).name;
  if (values["source-path"]) {
    return await deriveName(values.hostname ?? localHostname(io.env), resolve(values["source-path"]));
  }
  throw new UsageError(
    "name the database: --name NAME, --source-path PATH [--hostname HOST], or --source URL",
  );
}

/** The chunk layers a read goes through: the local cache, other processes' caches, then the stores. */
export function chunkSourceFor(context: CommandContext, store: BlobStore): ChunkSource {
  return chunkSourceForConfig(context.config, store, context.readable);
}

/** The options that choose a snapshot: a database (as {@linkcode databaseName} takes), a sequence, a
 * time (`at`), or a manifest file or key. */
export interface SnapshotChoice {
  name?: string | undefined;
  hostname?: string | undefined;
  "source-path"?: string | undefined;
  source?: string | undefined;
  sequence?: string | undefined;
  at?: string | undefined;
  manifest?: string | undefined;
}

/**
 * The time `--at` names, in ms since 1970: an ISO 8601 time (`2024-05-01T12:00:00Z`; without a zone, local
 * time), anything `Date.parse` reads, or a duration ago (`90m`, `2h`, `7d`).
 */
export function parseAt(text: string, nowMs: number = Date.now()): number {
  if (/^\d+(?:\.\d+)?[smhdw]$/.test(text.trim())) return nowMs - parseDuration(text);
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) {
    throw new UsageError(
      `--at ${JSON.stringify(text)} is not a time: give an ISO 8601 time such as 2024-05-01T12:00:00Z, ` +
        "or a duration ago such as 2h or 7d",
    );
  }
  return ms;
}

/**
 * Finds the manifest the options choose, and the store it came from: a manifest file or key, or a snapshot
 * of a database chosen across the readable stores by {@linkcode resolveSnapshot}'s policy (the newest
 * pointer wins; a store that fails is skipped with a warning on stderr).
 */
export async function findManifest(
  values: SnapshotChoice,
  context: CommandContext,
  io: CliIo,
): Promise<{ loaded: LoadedManifest; store: BlobStore }> {
  if (values.at !== undefined && (values.sequence !== undefined || values.manifest)) {
    throw new UsageError("--at chooses a snapshot by time: give it without --sequence or --manifest");
  }
  const first = context.readable[0] as BlobStore;
  if (values.manifest) {
    if (await exists(values.manifest)) {
      return { loaded: await loadManifestFile(values.manifest), store: first };
    }
    for (const store of context.readable) {
      const got = await store.get(values.manifest);
      if (got.status !== "ok") continue;
      const manifest = await decodeManifest(got.body, { what: `${store.description} ${values.manifest}` });
      return { loaded: { manifest, manifestBytes: got.body, key: values.manifest }, store };
    }
    throw new TesseraError(
      "NOT_FOUND",
      `Cannot find manifest "${values.manifest}": no such file, nor key in any store`,
    );
  }
  const atMs = values.at === undefined ? undefined : parseAt(values.at);
  const name = await databaseName(values, io);
  let sequence: number | undefined;
  if (values.sequence !== undefined) {
    sequence = Number(values.sequence);
    if (!Number.isSafeInteger(sequence) || sequence < 1) {
      throw new UsageError("--sequence takes a whole number ≥ 1");
    }
  }
  const { loaded, store, skipped } = await resolveSnapshot(context.readable, { name, sequence, atMs });
  for (const { error } of skipped) warnSkipped(io, error);
  return { loaded, store };
}

/** Tells the user on stderr that a store failed and was skipped. */
export function warnSkipped(io: CliIo, error: unknown): void {
  io.stderr(`tessera: warning: skipped a store: ${(error as Error)?.message ?? String(error)}\n`);
}

/** True when something exists at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
