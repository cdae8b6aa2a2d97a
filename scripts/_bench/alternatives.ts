/**
 * What a user would do without Tessera, timed the same way: Debian's awscli copying the whole file to and
 * from the same S3 server, curl downloading it from a static HTTP server, and `cp` of the whole file for a
 * local copy. Plus the small tools the benchmark shares: a timer, the SHA-256 of a file and its check.
 *
 * @module
 */

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, open } from "node:fs/promises";
import { promisify } from "node:util";
import { awsCli, type AwsCliTarget } from "../../test/_helpers/awscli.ts";

const execFileAsync = promisify(execFile);

/** Runs `fn` and returns its result with the wall time it took, in seconds. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const start = performance.now();
  const value = await fn();
  return { seconds: (performance.now() - start) / 1000, value };
}

/** SHA-256 of the file at `path`, lower-case hex, read as a stream. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Uint8Array);
  }
  return hash.digest("hex");
}

/**
 * Hashes the file at `path` (not what a tool reported about it) and throws, naming `what`, unless its
 * SHA-256 is `expected`: a benchmark run stops on any restore or download that differs from its source.
 */
export async function checkSha256(path: string, expected: string, what: string): Promise<void> {
  const actual = await sha256File(path);
  if (actual !== expected) {
    throw new Error(`${what} is not the source: its SHA-256 is ${actual}, the source file's is ${expected}`);
  }
}

/** `aws s3 cp FROM TO`; throws with awscli's stderr when it fails. Returns the wall time in seconds. */
export async function awsCopy(target: AwsCliTarget, from: string, to: string): Promise<number> {
  const { seconds, value } = await timed(() => awsCli(target, ["s3", "cp", "--only-show-errors", from, to]));
  if (value.code !== 0) {
    throw new Error(
      `Cannot run aws s3 cp ${from} ${to}: exit code ${value.code}; its stderr:\n${value.stderr}`,
    );
  }
  return seconds;
}

/**
 * `curl -o OUT URL`, one process as a user runs it; throws with curl's stderr when it fails (an HTTP error
 * status included). Returns the wall time in seconds.
 */
export async function curlDownload(url: string, out: string): Promise<number> {
  const { seconds } = await timed(async () => {
    try {
      await execFileAsync("curl", ["--silent", "--show-error", "--fail", "-o", out, url]);
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr?.trim() ?? "";
      throw new Error(`Cannot download ${url} with curl: ${stderr || (error as Error).message}`, {
        cause: error,
      });
    }
  });
  return seconds;
}

/** curl's version (`curl 7.88.1`), for the report's header; `"curl (version unknown)"` if it cannot say. */
export async function curlVersion(): Promise<string> {
  try {
    const { stdout } = await execFileAsync("curl", ["--version"]);
    return stdout.split(" ").slice(0, 2).join(" ");
  } catch {
    return "curl (version unknown)";
  }
}

/** awscli's version line, for the report's header. */
export async function awsVersion(target: AwsCliTarget): Promise<string> {
  const { code, stdout, stderr } = await awsCli(target, ["--version"]);
  const text = new TextDecoder().decode(stdout).trim() || stderr.trim();
  return code === 0 ? text.split(" ")[0] ?? text : "unknown";
}

/** Times for copying a file with `cp` (node:fs `copyFile`): as is, and made durable with fsync. */
export interface CopyTimes {
  /** `copyFile` alone: the copy may still sit in the page cache. */
  cp: number;
  /** `copyFile`, then fsync of the copy: durable, as Tessera's local store and restore are. */
  cpFsync: number;
}

/**
 * Copies `from` to `durable` (then fsyncs it) and to `plain` (fsynced after the timer stops, so its dirty
 * pages do not slow whatever runs next).
 */
export async function copyTimes(from: string, to: { durable: string; plain: string }): Promise<CopyTimes> {
  const { durable, plain } = to;
  const cpFsync = await timed(async () => {
    await copyFile(from, durable);
    await fsyncFile(durable);
  });
  const cp = await timed(() => copyFile(from, plain));
  await fsyncFile(plain);
  return { cp: cp.seconds, cpFsync: cpFsync.seconds };
}

async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, "r+");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
