/**
 * Debian's awscli as an independent S3 client for tests: what Tessera writes must list and download with it.
 *
 * @module
 */

import { spawn } from "node:child_process";
import { access, constants } from "node:fs/promises";
import process from "node:process";

/** Debian's awscli, called by full path because an older `aws` may come first on `PATH`. */
export const AWS_CLI = "/usr/bin/aws";

/** Where and as whom {@linkcode awsCli} connects; an `S3TestServer` fits. */
export interface AwsCliTarget {
  /** The S3 endpoint URL, passed as `--endpoint-url`. */
  endpoint: string;
  /** The region, passed as `AWS_DEFAULT_REGION`. */
  region: string;
  /** The access key id, passed as `AWS_ACCESS_KEY_ID`. */
  accessKeyId: string;
  /** The secret access key, passed as `AWS_SECRET_ACCESS_KEY`. */
  secretAccessKey: string;
}

/** Options for {@linkcode awsCli}. */
export interface AwsCliOptions {
  /** Bytes written to the command's stdin (for `aws s3 cp - s3://...`); none by default. */
  input?: Uint8Array;
}

/** How an `aws` command ended. */
export interface AwsCliResult {
  /** The exit code; 0 on success. */
  code: number;
  /** Everything written to stdout. */
  stdout: Uint8Array;
  /** Everything written to stderr, as text. */
  stderr: string;
}

/**
 * Runs `/usr/bin/aws --endpoint-url <endpoint> ...args` with an environment holding only the given
 * credentials and region, `PATH` and `HOME`, so no user configuration or instance metadata is consulted.
 *
 * Throws if Debian's awscli is not installed: tests that need it fail rather than skip.
 *
 * @example List a bucket
 * ```ts
 * import { awsCli } from "./awscli.ts";
 * import { startS3Server } from "./s3_server.ts";
 *
 * const s3 = await startS3Server();
 * const { code, stdout } = await awsCli(s3, ["s3", "ls", `s3://${s3.bucket}/`]);
 * console.log(code, new TextDecoder().decode(stdout));
 * await s3.stop();
 * ```
 */
export async function awsCli(
  server: AwsCliTarget,
  args: string[],
  options: AwsCliOptions = {},
): Promise<AwsCliResult> {
  try {
    await access(AWS_CLI, constants.X_OK);
  } catch {
    throw new Error(`Debian's awscli is required at ${AWS_CLI}: run \`apt-get install awscli\``);
  }
  const env: Record<string, string> = {
    AWS_ACCESS_KEY_ID: server.accessKeyId,
    AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
    AWS_DEFAULT_REGION: server.region,
    AWS_CONFIG_FILE: "/dev/null",
    AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_PAGER: "",
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
  };
  const child = spawn(AWS_CLI, ["--endpoint-url", server.endpoint, ...args], { env });
  const stdout: Uint8Array[] = [];
  let stderr = "";
  child.stdout.on("data", (chunk: Uint8Array) => stdout.push(chunk));
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => stderr += text);
  child.stdin.on("error", () => {});
  child.stdin.end(options.input ?? new Uint8Array());
  const code = await new Promise<number>((resolve, reject) => {
    child.on(
      "error",
      (error) => reject(new Error(`Cannot run ${AWS_CLI}: ${error.message}`, { cause: error })),
    );
    child.on("close", (exitCode, signal) => {
      if (exitCode !== null) resolve(exitCode);
      else reject(new Error(`${AWS_CLI} ${args.join(" ")} was killed by ${signal}; its stderr:\n${stderr}`));
    });
  });
  return { code, stdout: concat(stdout), stderr };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(chunks.reduce((total, chunk) => total + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}
