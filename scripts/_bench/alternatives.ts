/**
 * What a user would do without Tessera, timed the same way: Debian's awscli copying the whole file to and
 * from the same S3 server, and `cp` of the whole file for a local copy. Plus the small tools the benchmark
 * shares: a timer and the SHA-256 of a file.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, open } from "node:fs/promises";
import { awsCli, type AwsCliTarget } from "../../test/_helpers/awscli.ts";

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
