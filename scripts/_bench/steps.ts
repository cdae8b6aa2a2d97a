/**
 * The step-by-step part of the end-to-end benchmark, through library calls at one database size: a
 * database of random rows synced to, and restored from, s3rver (through S3Store) and a local directory
 * store, each step beside what a user would do without Tessera, measured in the same run: Debian's awscli
 * copying the whole file up and down, and `cp` of the whole file. Full, no-op and one-row syncs, a WAL
 * database's, cold and cached restores, and the manifest's growth at 1 GiB. Every restore is checked byte
 * for byte (SHA-256) against the source file, and the run fails if one differs.
 *
 * @module
 */

import { writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { type ChunkSource, LayeredChunkSource, StoreChunkSource } from "../../src/chunk/source.ts";
import { DirectoryChunkCache } from "../../src/chunk/directory_cache.ts";
import { loadLatest } from "../../src/manifest/catalog.ts";
import { restoreImage } from "../../src/restore/restore.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { LocalStore } from "../../src/store/local.ts";
import { S3Store } from "../../src/store/s3.ts";
import type { S3TestServer } from "../../test/_helpers/s3_server.ts";
import { awsCopy, awsVersion, checkSha256, copyTimes, sha256File, timed } from "./alternatives.ts";
import { CountingStore } from "./counting_store.ts";
import { createRandomDatabase, openWalCopy, updateOneRow, type WalDatabase } from "./database.ts";
import { measureManifestGrowth } from "./manifest_growth.ts";
import type { Alternative, BenchResult, RestoreStep, SyncStep } from "./report.ts";
import { runtimeName } from "./run.ts";

const CHUNK_SIZE = 64 * 1024;

/** What {@linkcode measureSteps} needs: the size, a work directory of its own, and a running s3rver. */
export interface StepsOptions {
  sizeMiB: number;
  /** An empty directory for the databases, spools and caches; the caller removes it. */
  work: string;
  /** The S3 server; the steps use keys under `steps/` in its bucket. */
  s3: S3TestServer;
  progress: (line: string) => void;
}

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

export async function measureSteps(options: StepsOptions): Promise<BenchResult> {
  const { sizeMiB, work, s3, progress } = options;
  const started = performance.now();
  let wal: WalDatabase | undefined;
  try {
    const source = join(work, "app.db");
    progress(`creating a ${sizeMiB} MiB database`);
    const info = await createRandomDatabase(source, sizeMiB * 1024 * 1024);
    const chunks = Math.ceil(info.bytes / CHUNK_SIZE);
    const rows = info.rows;

    progress("timing the alternatives on the original file");
    const awscli = await awsVersion(s3);
    const tiny = join(work, "one-byte");
    await writeFile(tiny, "x");
    const awsOneByteUpload = await awsCopy(s3, tiny, `s3://${s3.bucket}/steps/whole/one-byte`);
    const awsUpload = await awsCopy(s3, source, `s3://${s3.bucket}/steps/whole/app.db`);
    const copies = await copyTimes(source, {
      durable: join(work, "cp-durable.db"),
      plain: join(work, "cp-plain.db"),
    });
    const alt = { awsUpload, awsUploadUpdated: 0, awsDownload: 0, cpFsync: copies.cpFsync };

    const cacheCapacity = Math.max(10_000, chunks * 8);
    const makeTarget = (label: string, key: string, inner: S3Store | LocalStore, isS3: boolean): Target => ({
      label,
      store: new CountingStore(inner),
      spoolDir: join(work, `spool-${key}`),
      cache: new DirectoryChunkCache({ directory: join(work, `cache-${key}`), capacity: cacheCapacity }),
      up: () => isS3 ? awsAlt("awscli up", alt.awsUpload) : cpAlt(),
      upUpdated: () => isS3 ? awsAlt("awscli up", alt.awsUploadUpdated) : cpAlt(),
      down: () => isS3 ? awsAlt("awscli down", alt.awsDownload) : cpAlt(),
    });
    const awsAlt = (name: string, seconds: number): Alternative => ({ name, seconds });
    const cpAlt = (): Alternative => ({ name: "cp+fsync", seconds: alt.cpFsync });
    const s3Store = new S3Store({
      bucket: s3.bucket,
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    }, { prefix: "steps/tessera/" });
    const targets = [
      makeTarget("S3 (s3rver, S3Store)", "s3", s3Store, true),
      makeTarget("local directory (LocalStore, fsync)", "local", new LocalStore(join(work, "store")), false),
    ];

    const sync: SyncStep[] = [];
    const syncEach = async (run: Omit<SyncRun, "alternative">, alternative: "up" | "upUpdated") => {
      for (const t of targets) {
        progress(`${run.step}: ${t.label}`);
        sync.push(await runSync(t, { ...run, alternative: t[alternative]() }));
      }
    };
    const sourceSha = await sha256File(source);
    const app = { path: source, name: "app" };
    await syncEach({ ...app, step: "full sync (empty store)", expectedSha: sourceSha }, "up");
    await syncEach({ ...app, step: "no-op sync", expectedSha: sourceSha }, "up");

    await updateOneRow(source, Math.ceil(rows / 2));
    const updatedSha = await sha256File(source);
    progress("timing awscli on the updated file");
    alt.awsUploadUpdated = await awsCopy(s3, source, `s3://${s3.bucket}/steps/whole/app.db`);
    const awsOut = join(work, "aws-download.db");
    alt.awsDownload = await awsCopy(s3, `s3://${s3.bucket}/steps/whole/app.db`, awsOut);
    await checkSha256(awsOut, updatedSha, "the awscli download");
    await syncEach({ ...app, step: "1-row update, sync", expectedSha: updatedSha }, "upUpdated");

    // Same store and prefix: the copy's chunks are already there, which shows content addressing at work.
    const walDb = { path: join(work, "wal.db"), name: "wal" };
    wal = await openWalCopy(source, walDb.path, Math.ceil(rows / 4));
    await syncEach({ ...walDb, step: "WAL copy: first sync (chunks shared)" }, "up");
    await syncEach({ ...walDb, step: "WAL: no-op sync" }, "up");
    await wal.update(Math.ceil((rows * 3) / 4));
    await syncEach({ ...walDb, step: "WAL: 1-row update, sync" }, "upUpdated");

    const restore: RestoreStep[] = [];
    for (const t of targets) {
      progress(`restores from ${t.label}`);
      const out = join(work, "restored.db");
      const store = new StoreChunkSource(t.store);
      const cached = new LayeredChunkSource([t.cache, store]);
      const latest = { name: "app", out, expectedSha: updatedSha };
      restore.push(await runRestore(t, { ...latest, step: "cold, no cache", chunks: store }));
      restore.push(await runRestore(t, { ...latest, step: "cold, filling an empty cache", chunks: cached }));
      restore.push(await runRestore(t, { ...latest, step: "warm (cache filled above)", chunks: cached }));
    }
    // The WAL image is known once the WAL is checkpointed into the file, which must wait for the restores.
    const walRestores: [RestoreStep, string][] = [];
    for (const [i, t] of targets.entries()) {
      const out = join(work, `restored-wal-${i}.db`);
      const cached = new LayeredChunkSource([t.cache, new StoreChunkSource(t.store)]);
      const step = await runRestore(t, {
        name: "wal",
        step: "WAL snapshot, same warm cache",
        chunks: cached,
        out,
      });
      restore.push(step);
      walRestores.push([step, out]);
    }
    await wal.checkpoint();
    const walSha = await sha256File(walDb.path);
    for (const [step, out] of walRestores) {
      await checkSha256(out, walSha, `the WAL snapshot restored from ${step.store}`);
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
  }
}

/** One sync of `path` as database `name`, timed and counted. */
interface SyncRun {
  path: string;
  name: string;
  step: string;
  alternative: Alternative;
  /** The source file's SHA-256, checked against the image's when the sync hashed it whole. */
  expectedSha?: string | undefined;
}

async function runSync(t: Target, run: SyncRun): Promise<SyncStep> {
  const { path, name, step, alternative, expectedSha } = run;
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

/** One restore of the newest snapshot of database `name` to `out`, timed, counted and checked. */
interface RestoreRun {
  name: string;
  step: string;
  chunks: ChunkSource;
  out: string;
  /** The source file's SHA-256; when absent the caller checks the restored file later. */
  expectedSha?: string | undefined;
}

async function runRestore(t: Target, run: RestoreRun): Promise<RestoreStep> {
  const { name, step, chunks, out, expectedSha } = run;
  t.store.take();
  const { seconds, value: result } = await timed(async () => {
    const { manifest } = await loadLatest(t.store, name);
    return await restoreImage({ manifest, chunks, out });
  });
  const requests = t.store.take();
  if (expectedSha !== undefined) await checkSha256(out, expectedSha, `the "${step}" restore from ${t.label}`);
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
