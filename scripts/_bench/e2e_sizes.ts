/**
 * One database size of the end-to-end benchmark: a database of random rows synced with `tessera sync` to
 * each store setup and uploaded whole with awscli, then restored cold with `tessera restore` from each
 * setup beside the whole-file download a user would run instead (awscli from S3, curl from the static
 * server) and `cp`. Every restore and download is hashed and compared with the source; any difference
 * stops the run.
 *
 * @module
 */

import { copyFile, mkdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { AwsCliTarget } from "../../test/_helpers/awscli.ts";
import type { S3TestServer } from "../../test/_helpers/s3_server.ts";
import { awsCopy, checkSha256, copyTimes, curlDownload, sha256File } from "./alternatives.ts";
import { createRandomDatabase } from "./database.ts";
import { median } from "./replica_report.ts";
import type { LatencyStore } from "./latency_store.ts";
import type { DatabaseRecord, Measurement, SetupKey } from "./results.ts";
import type { StaticHttp } from "./static_http.ts";
import { type CliStore, PLAIN_ENV, s3Env, tesseraRestore, tesseraSync } from "./tessera_cli.ts";

/** The three store setups, running. */
export interface Setups {
  s3: S3TestServer;
  latency: LatencyStore;
  web: StaticHttp;
  /** The directory the static server serves: `store-r0/` (a directory store) and `whole/` (whole files). */
  webRoot: string;
}

/** What {@linkcode measureSize} needs besides the size. */
export interface SizeContext {
  setups: Setups;
  /** A directory for databases, spools and restored files. */
  work: string;
  /** Times each restore and upload is repeated; the median is reported. */
  reps: number;
  progress: (line: string) => void;
}

/** A database the benchmark made, and where each setup holds it. */
export interface MadeDatabase extends DatabaseRecord {
  path: string;
  name: string;
}

/**
 * The `--store` a full sync of repetition `rep` writes to: a fresh prefix (or directory) each time, so each
 * sync uploads everything. The static setup's is a directory under the served root.
 */
export function syncStore(setups: Setups, setup: SetupKey, rep: number): CliStore {
  const { s3, latency, webRoot } = setups;
  if (setup === "s3") return { url: `s3://${s3.bucket}/e2e/s3/r${rep}`, env: s3Env(s3) };
  if (setup === "latency") return { url: `s3://${s3.bucket}/e2e/latency/r${rep}`, env: s3Env(latency) };
  return { url: join(webRoot, `store-r${rep}`), env: PLAIN_ENV };
}

/** The `--store` a restore reads: what the first sync wrote, the static setup's over HTTP. */
export function restoreStore(setups: Setups, setup: SetupKey): CliStore {
  return setup === "static"
    ? { url: `${setups.web.url}/store-r0`, env: PLAIN_ENV }
    : syncStore(setups, setup, 0);
}

/** Makes a `sizeMiB` database and measures its syncs, uploads, restores and downloads. */
export async function measureSize(
  sizeMiB: number,
  cx: SizeContext,
): Promise<{ database: MadeDatabase; measurements: Measurement[] }> {
  const { setups, work, reps, progress } = cx;
  const { s3, latency, web, webRoot } = setups;
  const path = join(work, `db-${sizeMiB}.db`);
  progress(`${sizeMiB} MiB: creating the database`);
  const info = await createRandomDatabase(path, sizeMiB * 1048576);
  const sha256 = await sha256File(path);
  const database: MadeDatabase = {
    sizeMiB,
    bytes: info.bytes,
    rows: info.rows,
    pageSize: info.pageSize,
    sha256,
    path,
    name: `e2e-${sizeMiB}mib`,
  };
  const samples = new Map<string, { m: Measurement; all: number[]; requests: number[] }>();
  const record = (
    m: Omit<Measurement, "sizeMiB" | "bytes" | "seconds" | "samples">,
    seconds: number,
    requests?: number,
  ) => {
    const key = `${m.op}/${m.setup}/${m.tool}`;
    const entry = samples.get(key) ??
      { m: { ...m, sizeMiB, bytes: info.bytes, seconds: 0, samples: [] }, all: [], requests: [] };
    entry.all.push(seconds);
    if (requests !== undefined) entry.requests.push(requests);
    samples.set(key, entry);
  };
  // Counts what reached the latency proxy during `fn`: the requests a distant server would have answered.
  const counted = async <T>(setup: SetupKey, fn: () => Promise<T>): Promise<[T, number | undefined]> => {
    if (setup !== "latency") return [await fn(), undefined];
    await latency.takeRequests();
    const value = await fn();
    return [value, await latency.takeRequests()];
  };
  const out = join(work, `restored-${sizeMiB}.db`);
  const wholeKey = (setup: SetupKey) => `s3://${s3.bucket}/e2e/whole/${setup}/db-${sizeMiB}.db`;
  const awsTarget = (setup: SetupKey): AwsCliTarget => setup === "latency" ? latency : s3;

  await mkdir(join(webRoot, "whole"), { recursive: true });
  for (let rep = 0; rep < reps; rep++) {
    for (const setup of ["s3", "latency", "static"] as const) {
      progress(`${sizeMiB} MiB: full sync to ${setup} (${rep + 1}/${reps})`);
      const store = syncStore(setups, setup, rep);
      const spool = join(work, `spool-${sizeMiB}-${setup}-r${rep}`);
      const [sync, requests] = await counted(
        setup,
        () => tesseraSync(path, { store, name: database.name, spool }),
      );
      record(
        { op: "sync", setup, tool: "tessera", chunks: sync.output.chunks.uploaded },
        sync.seconds,
        requests,
      );
      if (setup !== "static") {
        const [seconds, awsRequests] = await counted(
          setup,
          () => awsCopy(awsTarget(setup), path, wholeKey(setup)),
        );
        record({ op: "sync", setup, tool: "awscli" }, seconds, awsRequests);
      }
    }
    const copies = await copyTimes(path, {
      durable: join(work, `cp-${sizeMiB}.db`),
      plain: join(work, `cp-plain-${sizeMiB}.db`),
    });
    record({ op: "copy", setup: "local", tool: "cp" }, copies.cpFsync);
    await unlink(join(work, `cp-${sizeMiB}.db`));
    await unlink(join(work, `cp-plain-${sizeMiB}.db`));
  }
  await copyFile(path, join(webRoot, "whole", `db-${sizeMiB}.db`));

  for (let rep = 0; rep < reps; rep++) {
    for (const setup of ["s3", "latency", "static"] as const) {
      progress(`${sizeMiB} MiB: restores from ${setup} (${rep + 1}/${reps})`);
      const [restore, requests] = await counted(
        setup,
        () => tesseraRestore({ store: restoreStore(setups, setup), name: database.name, out }),
      );
      await checkSha256(out, sha256, `The ${sizeMiB} MiB database restored by tessera from ${setup}`);
      await unlink(out);
      record(
        { op: "restore", setup, tool: "tessera", chunks: restore.output.chunksFetched },
        restore.seconds,
        requests,
      );
      if (setup === "static") {
        const seconds = await curlDownload(`${web.url}/whole/db-${sizeMiB}.db`, out);
        await checkSha256(out, sha256, `The ${sizeMiB} MiB database downloaded by curl`);
        record({ op: "restore", setup, tool: "curl" }, seconds);
      } else {
        const [seconds, awsRequests] = await counted(
          setup,
          () => awsCopy(awsTarget(setup), wholeKey(setup), out),
        );
        await checkSha256(out, sha256, `The ${sizeMiB} MiB database downloaded by awscli from ${setup}`);
        record({ op: "restore", setup, tool: "awscli" }, seconds, awsRequests);
      }
      await unlink(out);
    }
  }
  const measurements = [...samples.values()].map(({ m, all, requests }) => ({
    ...m,
    seconds: median(all),
    samples: all,
    ...(requests.length > 0 ? { requests: Math.round(median(requests)) } : {}),
  }));
  return { database, measurements };
}
