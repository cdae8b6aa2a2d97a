/**
 * Loading the configuration: from `-c`, else `TESSERA_CONFIG`, in Tessera's shape or Verneuil's, plus
 * the `--store` targets of the command line. docs/CONFIG.md is the reference.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import process from "node:process";
import { ConfigContext, type Json, showValue } from "./_fields.ts";
import { parseJson } from "./_json.ts";
import { TESSERA_KEYS, tesseraConfig } from "./_tessera.ts";
import { targetFromString } from "./_targets.ts";
import { VERNEUIL_IGNORED_KEYS, VERNEUIL_KEYS, verneuilConfig } from "./_verneuil.ts";
import type { TargetConfig, TesseraConfig } from "./types.ts";
import { errorMessage } from "../errors.ts";

/** Options of {@linkcode loadConfig}. */
export interface LoadConfigOptions {
  /** The value of `-c`: a JSON file's path, `@path` (Verneuil's form), or inline JSON starting with `{`. */
  arg?: string | undefined;
  /** The environment; `TESSERA_CONFIG` is read when `arg` is absent, in the same three forms. */
  env: Record<string, string | undefined>;
  /** The `--store` values, appended to the configured targets (an `http(s)://` store to `readOnly`). */
  stores?: readonly string[] | undefined;
  /** Relative paths, in the config and of the config file, resolve against this. @default {process.cwd()} */
  cwd?: string | undefined;
}

/** Options of {@linkcode normalizeConfig}. */
export interface NormalizeConfigOptions {
  /** Where the config came from, for messages. @default {"the given object"} */
  source?: string | undefined;
  /** Relative paths resolve against this. @default {process.cwd()} */
  cwd?: string | undefined;
}

/**
 * Loads and normalises the configuration. The source is `-c` when given, else `TESSERA_CONFIG`, else
 * none; each can be a JSON file's path, `@path`, or inline JSON. The JSON is in Tessera's shape
 * (`{"targets": ["s3://bucket/prefix"], ...}`) or Verneuil's (`{"replication_targets": [...], ...}`).
 * `--store` values are appended. With no source and no `--store`, the config is empty and the caller
 * decides whether that is an error.
 *
 * Every problem throws `TesseraError` `CONFIG_INVALID` naming the source, the field path, the value (never
 * a credential's) and the expected shape.
 *
 * @example Verneuil's config, inline
 * ```ts
 * import { loadConfig } from "./load.ts";
 *
 * const config = await loadConfig({
 *   arg: '{"replication_targets": [{"s3": {"region": "us-east-2", "chunk_bucket": "chunks", ' +
 *     '"manifest_bucket": "manifests", "domain_addressing": true}}]}',
 *   env: {},
 *   stores: ["/var/backups/tessera"],
 * });
 * console.log(config.targets.map((t) => t.kind)); // ["s3", "directory"]
 * ```
 */
export async function loadConfig(options: LoadConfigOptions): Promise<TesseraConfig> {
  const cwd = options.cwd ?? process.cwd();
  const chosen = chooseSource(options);
  const config = chosen ? await readSource(chosen.origin, chosen.value, cwd) : emptyConfig();
  const cx = new ConfigContext("the command line", cwd);
  for (const [i, value] of (options.stores ?? []).entries()) {
    const target = targetFromString(cx, value, `--store[${i}]`);
    const list = target.kind === "http" ? config.readOnly : config.targets;
    if (!list.some((t) => sameTarget(t, target))) list.push(target);
  }
  return config;
}

/**
 * Normalises a config object already parsed from JSON, in Tessera's shape or Verneuil's, as
 * {@linkcode loadConfig} does with the text it reads.
 *
 * @example
 * ```ts
 * import { normalizeConfig } from "./load.ts";
 * const config = normalizeConfig({ targets: ["s3://backups/app"], chunk_size: 65536 });
 * console.log(config.targets[0]); // { kind: "s3", bucket: "backups", prefix: "app/" }
 * ```
 */
export function normalizeConfig(value: unknown, options: NormalizeConfigOptions = {}): TesseraConfig {
  const cx = new ConfigContext(options.source ?? "the given object", options.cwd ?? process.cwd());
  return fromJson(cx, value);
}

/** Options of {@linkcode resolveConfig}. */
export interface ResolveConfigOptions {
  /** The environment; `TESSERA_CONFIG` is read when there is no config and no stores. */
  env: Record<string, string | undefined>;
  /** The function given the config, for messages: `openReplica` names "openReplica's config". */
  caller: string;
  /** The caller was given stores, so no config means none rather than `TESSERA_CONFIG`. @default {false} */
  hasStores?: boolean | undefined;
}

/**
 * The config a library entry point was given as its `config` option: an object in Tessera's or Verneuil's
 * shape (normalised), JSON text, a file's path or `@path` (loaded as `-c` is). Without one, the config in
 * `TESSERA_CONFIG`, unless the caller was given stores: then an empty config.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./load.ts";
 * const config = await resolveConfig({ targets: ["/var/backups/tessera"] }, { env: {}, caller: "openReplica" });
 * console.log(config.targets[0]?.kind); // "directory"
 * ```
 */
export async function resolveConfig(config: unknown, options: ResolveConfigOptions): Promise<TesseraConfig> {
  const { env } = options;
  if (config === undefined) return options.hasStores ? emptyConfig() : await loadConfig({ env });
  if (typeof config === "string") return await loadConfig({ arg: config, env });
  return normalizeConfig(config, { source: `${options.caller}'s config` });
}

function emptyConfig(): TesseraConfig {
  return { targets: [], readOnly: [], readOnlyCaches: [] };
}

function chooseSource(options: LoadConfigOptions): { origin: string; value: string } | undefined {
  if (options.arg !== undefined) return { origin: "-c", value: options.arg };
  const env = options.env.TESSERA_CONFIG;
  // An empty variable is easier to set than to unset; it means "no config", as with Verneuil's.
  if (env !== undefined && env.trim() !== "") return { origin: "TESSERA_CONFIG", value: env };
  return undefined;
}

async function readSource(origin: string, value: string, cwd: string): Promise<TesseraConfig> {
  if (value.trimStart().startsWith("{")) {
    return fromText(new ConfigContext(`${origin} (inline JSON)`, cwd), value);
  }
  const path = value.startsWith("@") ? value.slice(1) : value;
  if (path.trim() === "") {
    new ConfigContext(origin, cwd).fail("the value is empty; give a JSON file's path, @path or inline JSON");
  }
  const file = resolve(cwd, path);
  const fileCx: ConfigContext = new ConfigContext(`file "${file}" (from ${origin})`, cwd);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const reason = code === "ENOENT"
      ? `the file does not exist; check the path given to ${origin}`
      : code === "EISDIR"
      ? "it is a directory, not a JSON file"
      : code === "EACCES" || code === "EPERM"
      ? "permission to read it is denied"
      : `it cannot be read (${errorMessage(error)})`;
    fileCx.fail(reason, error);
  }
  return fromText(fileCx, text);
}

function fromText(cx: ConfigContext, text: string): TesseraConfig {
  if (text.trim() === "") {
    cx.fail('it is empty; expected a JSON object such as {"targets": ["s3://bucket/prefix"]}');
  }
  const parsed = parseJson(text);
  if (!parsed.ok) cx.fail(`invalid JSON at line ${parsed.line}, column ${parsed.column}: ${parsed.problem}`);
  return fromJson(cx, parsed.value);
}

function fromJson(cx: ConfigContext, value: unknown): TesseraConfig {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    cx.fail(`the top level is ${showValue("", value)}; expected a JSON object such as {"targets": [...]}`);
  }
  const obj = value as Json;
  const keys = Object.keys(obj);
  const verneuil = keys.filter((k) => VERNEUIL_KEYS.includes(k) || VERNEUIL_IGNORED_KEYS.includes(k));
  const tessera = keys.filter((k) => TESSERA_KEYS.includes(k));
  if (verneuil.length > 0 && tessera.length > 0) {
    cx.fail(
      `it mixes Tessera's keys (${tessera.join(", ")}) with Verneuil's (${verneuil.join(", ")}); ` +
        "write one shape or the other (see docs/CONFIG.md)",
    );
  }
  return verneuil.length > 0 ? verneuilConfig(cx, obj, TESSERA_KEYS) : tesseraConfig(cx, obj, VERNEUIL_KEYS);
}

function sameTarget(a: TargetConfig, b: TargetConfig): boolean {
  return JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
}
