/**
 * The `tessera` command run as a user runs it: one process per command (`deno run -A src/cli/main.ts …`
 * under Deno, `bun src/cli/main.ts …` under Bun), timed from spawn to exit, so a figure includes the
 * runtime's start as awscli's and curl's include theirs. The benchmark depends on the CLI's flags and its
 * `--json` output only, not on the library's internals.
 *
 * @module
 */

import { runScript } from "../../test/_helpers/run.ts";
import type { AwsCliTarget } from "../../test/_helpers/awscli.ts";
import { timed } from "./alternatives.ts";

const MAIN = "src/cli/main.ts";

/** Where a command's `--store` points, and the environment it needs there. */
export interface CliStore {
  /** A `--store` value: `s3://bucket/prefix`, a directory, or an `http://` URL. */
  url: string;
  /** Variables set for the command (S3 credentials and endpoint); the rest of the environment is inherited. */
  env: Record<string, string>;
}

/** What `tessera sync --json` printed, in the fields the benchmark reads. */
export interface SyncOutput {
  name: string;
  chunks: { total: number; uploaded: number };
}

/** What `tessera restore --json` printed, in the fields the benchmark reads. */
export interface RestoreOutput {
  bytes: number;
  chunksFetched: number;
  sha256: string;
}

/**
 * The environment that points the CLI at an S3 server as `target`, and nowhere else: no `TESSERA_CONFIG`
 * (its cache would make a cold restore warm), no session token, the endpoint for S3 in both variables.
 */
export function s3Env(target: AwsCliTarget): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: target.accessKeyId,
    AWS_SECRET_ACCESS_KEY: target.secretAccessKey,
    AWS_SESSION_TOKEN: "",
    AWS_REGION: target.region,
    AWS_ENDPOINT_URL_S3: target.endpoint,
    AWS_ENDPOINT_URL: target.endpoint,
    TESSERA_CONFIG: "",
  };
}

/** An environment for a store that needs no credentials (a directory, an HTTP server). */
export const PLAIN_ENV: Record<string, string> = { TESSERA_CONFIG: "" };

/** Runs `tessera <args> --json` with `env`, returning its parsed output and wall time; throws on failure. */
async function runJson<T>(
  args: string[],
  env: Record<string, string>,
): Promise<{ seconds: number; value: T }> {
  const { seconds, value: result } = await timed(() => runScript(MAIN, [...args, "--json"], { env }));
  if (result.code !== 0) {
    throw new Error(
      `Cannot run tessera ${args.join(" ")}: exit code ${result.code}; its stderr:\n${result.stderr.trim()}`,
    );
  }
  try {
    return { seconds, value: JSON.parse(result.stdout) as T };
  } catch (error) {
    throw new Error(`tessera ${args[0]} printed no JSON: ${result.stdout.slice(0, 200)}`, { cause: error });
  }
}

/** `tessera sync DB --store … --name NAME --spool DIR`: a full sync when `spool` is new and the store empty. */
export async function tesseraSync(
  db: string,
  options: { store: CliStore; name: string; spool: string },
): Promise<{ seconds: number; output: SyncOutput }> {
  const { store, name, spool } = options;
  const { seconds, value } = await runJson<SyncOutput | SyncOutput[]>(
    ["sync", db, "--store", store.url, "--name", name, "--spool", spool],
    store.env,
  );
  const output = Array.isArray(value) ? value[0] : value;
  if (output === undefined) throw new Error(`tessera sync ${db} reported no database`);
  return { seconds, output };
}

/** `tessera restore --store … --name NAME --out OUT [--concurrency N]`, with no cache: a cold restore. */
export async function tesseraRestore(
  options: { store: CliStore; name: string; out: string; concurrency?: number | undefined },
): Promise<{ seconds: number; output: RestoreOutput }> {
  const { store, name, out, concurrency } = options;
  const args = ["restore", "--store", store.url, "--name", name, "--out", out];
  if (concurrency !== undefined) args.push("--concurrency", String(concurrency));
  const { seconds, value } = await runJson<RestoreOutput>(args, store.env);
  return { seconds, output: value };
}

/** `tessera --version`, which also warms the runtime's module cache before anything is timed. */
export async function tesseraVersion(): Promise<string> {
  const result = await runScript(MAIN, ["--version"]);
  if (result.code !== 0) throw new Error(`Cannot run tessera --version: ${result.stderr.trim()}`);
  return result.stdout.trim();
}
