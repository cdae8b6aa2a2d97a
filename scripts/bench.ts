/**
 * The end-to-end benchmark: a SQLite database of random rows synced to, and restored from, a real S3
 * server (s3rver, through S3Store) and a local directory store, each step beside what a user would do
 * without Tessera, measured in the same run: Debian's awscli copying the whole file up and down, and `cp`
 * of the whole file. Every restore is checked byte for byte (SHA-256) against the source file, and the run
 * fails if one differs. There are no thresholds: it reports times, ratios, bytes and requests.
 *
 * Usage: deno run -A scripts/bench.ts [--size-mib N] [--json]     (or: bun scripts/bench.ts ...)
 *
 * @module
 */

import { writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import {
  type ChunkSource,
  DirectoryChunkCache,
  LayeredChunkSource,
  StoreChunkSource,
} from "../src/chunk/source.ts";
import { loadLatest } from "../src/restore/manifest_source.ts";
import { restoreImage } from "../src/restore/restore.ts";
import { syncDatabase } from "../src/snapshot/sync.ts";
import { LocalStore } from "../src/store/local.ts";
import { S3Store } from "../src/store/s3.ts";
import { type S3TestServer, startS3Server } from "../test/_helpers/s3_server.ts";
import { makeTempDir, removeDir } from "../test/_helpers/temp.ts";
import { awsCopy, awsVersion, copyTimes, sha256File, timed } from "./_bench/alternatives.ts";
import { CountingStore } from "./_bench/counting_store.ts";
import { createRandomDatabase, openWalCopy, updateOneRow, type WalDatabase } from "./_bench/database.ts";
import { measureManifestGrowth } from "./_bench/manifest_growth.ts";
import {
  type Alternative,
  type BenchResult,
  renderText,
  type RestoreStep,
  type SyncStep,
} from "./_bench/report.ts";

const CHUNK_SIZE = 64 * 1024;
const USAGE = "usage: bench.ts [--size-mib N] [--json]";

/** A store under test, with its own spool (the record of its last sync) and chunk cache. */
interface Target {
  label: string;
  store: CountingStore;
  spoolDir: string;
  cache: DirectoryChunkCache;
  /** The alternative to a whole-file upload and a whole-file download, for this store. */
  up: () => Alternative;
  upUpdated: () => Alternative;
  down: () => Alternative;
}

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    "size-mib": { type: "string", default: "256" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const sizeMiB = Number(values["size-mib"]);
if (!Number.isInteger(sizeMiB) || sizeMiB < 1) {
  console.error(`bench: --size-mib takes a whole number of MiB ≥ 1, not "${values["size-mib"]}"\n${USAGE}`);
  process.exit(2);
}
const progress = process.stderr.isTTY && !values.json
  ? (line: string) => process.stderr.write(`bench: ${line}\n`)
  : () => {};

async function main(): Promise<BenchResult> {
  const started = performance.now();
  const work = await makeTempDir("bench-e2e");
  let server: S3TestServer | undefined;
  let wal: WalDatabase | undefined;
  try {
    server = await startS3Server({ buckets: ["tessera-bench"] });
    const s3 = server;
    const source = join(work, "app.db");
    progress(`creating a ${sizeMiB} MiB database`);
    const info = await createRandomDatabase(source, sizeMiB * 1024 * 1024);
    const chunks = Math.ceil(info.bytes / CHUNK_SIZE);
    const rows = info.rows;

    progress("timing the alternatives on the original file");
    const awscli = await awsVersion(s3);
    const tiny = join(work, "one-byte");
    await writeFile(tiny, "x");
    const awsOneByteUpload = await awsCopy(s3, tiny, `s3://${s3.bucket}/whole/one-byte`);
    const awsUpload = await awsCopy(s3, source, `s3://${s3.bucket}/whole/app.db`);
    const copies = await copyTimes(source, join(work, "cp-durable.db"), join(work, "cp-plain.db"));
    const alt = { awsUpload, awsUploadUpdated: 0, awsDownload: 0, cpFsync: copies.cpFsync };

    const cacheCapacity = Math.max(10_000, chunks * 8);
    const makeTarget = (label: string, key: string, inner: S3Store | LocalStore, isS3: boolean): Target => ({
      label,
      store: new CountingStore(inner),
      spoolDir: join(work, `spool-${key}`),
      cache: new DirectoryChunkCache({ directory: join(work, `cache-${key}`), capacity: cacheCapacity }),
      up: () =>
        isS3 ? { name: "awscli up", seconds: alt.awsUpload } : { name: "cp+fsync", seconds: alt.cpFsync },
      upUpdated: () =>
        isS3
          ? { name: "awscli up", seconds: alt.awsUploadUpdated }
          : { name: "cp+fsync", seconds: alt.cpFsync },
      down: () =>
        isS3 ? { name: "awscli down", seconds: alt.awsDownload } : { name: "cp+fsync", seconds: alt.cpFsync },
    });
    const s3Store = new S3Store({
      bucket: s3.bucket,
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    }, { prefix: "tessera/" });
    const targets = [
      makeTarget("S3 (s3rver, S3Store)", "s3", s3Store, true),
      makeTarget("local directory (LocalStore, fsync)", "local", new LocalStore(join(work, "store")), false),
    ];

    const sync: SyncStep[] = [];
    const sourceSha = await sha256File(source);
    for (const t of targets) {
      progress(`full sync to ${t.label}`);
      sync.push(await runSync(t, source, "app", "full sync (empty store)", t.up(), sourceSha));
    }
    for (const t of targets) sync.push(await runSync(t, source, "app", "no-op sync", t.up(), sourceSha));

    await updateOneRow(source, Math.ceil(rows / 2));
    const updatedSha = await sha256File(source);
    progress("timing awscli on the updated file");
    alt.awsUploadUpdated = await awsCopy(s3, source, `s3://${s3.bucket}/whole/app.db`);
    const awsOut = join(work, "aws-download.db");
    alt.awsDownload = await awsCopy(s3, `s3://${s3.bucket}/whole/app.db`, awsOut);
    await checkSha(awsOut, updatedSha, "the awscli download");
    for (const t of targets) {
      progress(`1-row update, sync to ${t.label}`);
      sync.push(await runSync(t, source, "app", "1-row update, sync", t.upUpdated(), updatedSha));
    }

    progress("WAL-mode copy");
    wal = await openWalCopy(source, join(work, "wal.db"), Math.ceil(rows / 4));
    for (const t of targets) {
      progress(`WAL copy, first sync to ${t.label}`);
      sync.push(await runSync(t, wal.path, "wal", "WAL copy: first sync (chunks shared)", t.up(), undefined));
    }
    for (const t of targets) {
      sync.push(await runSync(t, wal.path, "wal", "WAL: no-op sync", t.up(), undefined));
    }
    await wal.update(Math.ceil((rows * 3) / 4));
    for (const t of targets) {
      sync.push(await runSync(t, wal.path, "wal", "WAL: 1-row update, sync", t.upUpdated(), undefined));
    }

    const restore: RestoreStep[] = [];
    for (const t of targets) {
      const out = join(work, "restored.db");
      const store = new StoreChunkSource(t.store);
      progress(`restores from ${t.label}`);
      restore.push(await runRestore(t, "app", "cold, no cache", store, out, updatedSha));
      const cached = new LayeredChunkSource([t.cache, store]);
      restore.push(await runRestore(t, "app", "cold, filling an empty cache", cached, out, updatedSha));
      restore.push(await runRestore(t, "app", "warm (cache filled above)", cached, out, updatedSha));
    }
    // The WAL image is known once the WAL is checkpointed into the file, which must wait for the restores.
    const walRestores: [RestoreStep, string][] = [];
    for (const [i, t] of targets.entries()) {
      const out = join(work, `restored-wal-${i}.db`);
      const cached = new LayeredChunkSource([t.cache, new StoreChunkSource(t.store)]);
      const step = await runRestore(t, "wal", "WAL snapshot, same warm cache", cached, out, undefined);
      restore.push(step);
      walRestores.push([step, out]);
    }
    await wal.checkpoint();
    const walSha = await sha256File(wal.path);
    for (const [step, out] of walRestores) {
      await checkSha(out, walSha, `the WAL snapshot restored from ${step.store}`);
      step.sha256MatchesSource = true;
    }

    progress("computing the 1 GiB manifest");
    const manifestAt1GiB = await measureManifestGrowth();
    return {
      runtime: runtimeName(),
      cpus: availableParallelism(),
      sizeMiBRequested: sizeMiB,
      database: { ...info, chunkSize: CHUNK_SIZE, chunks },
      awscli,
      alternatives: { awsOneByteUpload, ...alt, cp: copies.cp },
      sync,
      restore,
      manifestAt1GiB,
      totalSeconds: (performance.now() - started) / 1000,
    };
  } finally {
    wal?.close();
    await server?.stop();
    await removeDir(work);
  }
}

async function runSync(
  t: Target,
  path: string,
  name: string,
  step: string,
  alternative: Alternative,
  expectedSha: string | undefined,
): Promise<SyncStep> {
  t.store.take();
  const { seconds, value: report } = await timed(() =>
    syncDatabase(path, {
      stores: [t.store],
      hostname: "bench",
      name,
      spoolDir: t.spoolDir,
      chunkSize: CHUNK_SIZE,
    })
  );
  if (expectedSha !== undefined && report.imageSha256 !== null && report.imageSha256 !== expectedSha) {
    throw new Error(
      `Sync "${step}" to ${t.label} hashed the image as ${report.imageSha256}, but the file's SHA-256 is ` +
        expectedSha,
    );
  }
  return {
    store: t.label,
    step,
    seconds,
    alternative,
    ratio: seconds / alternative.seconds,
    noop: report.noop,
    chunks: report.chunks,
    bytes: report.bytes,
    requests: t.store.take(),
  };
}

async function runRestore(
  t: Target,
  name: string,
  step: string,
  chunks: ChunkSource,
  out: string,
  expectedSha: string | undefined,
): Promise<RestoreStep> {
  t.store.take();
  const { seconds, value: result } = await timed(async () => {
    const { manifest } = await loadLatest(t.store, name);
    return await restoreImage({ manifest, chunks, out });
  });
  const requests = t.store.take();
  if (expectedSha !== undefined) await checkSha(out, expectedSha, `the "${step}" restore from ${t.label}`);
  const alternative = t.down();
  return {
    store: t.label,
    step,
    seconds,
    alternative,
    ratio: seconds / alternative.seconds,
    chunksFetched: result.chunksFetched,
    requests,
    sha256: result.sha256,
    sha256MatchesSource: expectedSha !== undefined,
  };
}

// Hashes the file itself, not what the restore reported, and stops the run on any difference.
async function checkSha(path: string, expected: string, what: string): Promise<void> {
  const actual = await sha256File(path);
  if (actual !== expected) {
    throw new Error(`${what} is not the source: its SHA-256 is ${actual}, the source file's is ${expected}`);
  }
}

function runtimeName(): string {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.deno) return `deno ${versions.deno}`;
  if (versions.bun) return `bun ${versions.bun}`;
  return `node ${process.version}`;
}

const result = await main();
console.log(values.json ? JSON.stringify(result, null, 2) : renderText(result));
