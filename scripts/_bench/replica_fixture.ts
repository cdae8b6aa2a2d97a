/**
 * What every section of the replica benchmark reads: a real S3 server (s3rver in its own process) behind
 * S3Store, and databases of random rows synced to it once each, made on first use.
 *
 * @module
 */

import { copyFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { ChunkSource } from "../../src/chunk/source.ts";
import { chunkSourceFor } from "../../src/config/stores.ts";
import { syncDatabase, type SyncReport } from "../../src/write/sync.ts";
import { S3Store } from "../../src/store/s3.ts";
import { type S3TestServer, startS3Server } from "../../test/_helpers/s3_server.ts";
import { createRandomDatabase } from "./database.ts";

/** A database of random rows (table `random_data`: id 1 .. rows, n, a 200-byte payload), synced. */
export interface BenchDatabase {
  /** Its name in the store. */
  name: string;
  path: string;
  sizeMiB: number;
  bytes: number;
  rows: number;
}

/** How the writer process reaches the same bucket (s3rver's fixed, public test credentials). */
export interface StoreAddress {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  prefix: string;
}

const BUCKET = "tessera-bench";
const PREFIX = "tessera/";
export const HOSTNAME = "bench";

/** The S3 server, the store over it, and the databases made so far. */
export class ReplicaFixture {
  readonly work: string;
  readonly server: S3TestServer;
  readonly store: S3Store;
  readonly spoolDir: string;
  readonly #progress: (line: string) => void;
  readonly #made = new Map<number, Promise<BenchDatabase>>();
  #caches = 0;

  private constructor(work: string, server: S3TestServer, progress: (line: string) => void) {
    this.work = work;
    this.server = server;
    this.#progress = progress;
    this.spoolDir = join(work, "spool");
    this.store = new S3Store(storeOptions(this.address), { prefix: PREFIX });
  }

  /** Starts s3rver; {@linkcode ReplicaFixture.stop} stops it. */
  static async start(work: string, progress: (line: string) => void): Promise<ReplicaFixture> {
    progress("starting s3rver");
    return new ReplicaFixture(work, await startS3Server({ buckets: [BUCKET] }), progress);
  }

  get address(): StoreAddress {
    const { endpoint, region, accessKeyId, secretAccessKey } = this.server;
    return { endpoint, bucket: BUCKET, region, accessKeyId, secretAccessKey, prefix: PREFIX };
  }

  /** A database of at least `sizeMiB` MiB named `app-<size>`, made and synced on first use. */
  database(sizeMiB: number): Promise<BenchDatabase> {
    let made = this.#made.get(sizeMiB);
    if (!made) {
      made = this.#make(sizeMiB);
      this.#made.set(sizeMiB, made);
    }
    return made;
  }

  /** A copy of `base` under another name (its own file and snapshot history), synced. */
  async copy(base: BenchDatabase, name: string): Promise<BenchDatabase> {
    const path = join(this.work, "db", `${name}.db`);
    await copyFile(base.path, path);
    const copy = { ...base, name, path };
    await this.sync(copy);
    return copy;
  }

  /** Publishes the database's current state. */
  sync(db: BenchDatabase): Promise<SyncReport> {
    return syncDatabase(db.path, {
      stores: [this.store],
      hostname: HOSTNAME,
      name: db.name,
      spoolDir: this.spoolDir,
    });
  }

  /** A new, empty directory under the benchmark's work directory. */
  async newDirectory(what: string): Promise<string> {
    const path = join(this.work, `${what}-${++this.#caches}`);
    await mkdir(path, { recursive: true });
    return path;
  }

  /** The chunk source openReplica builds for `cacheDirectory` (chunkSourceFor, uncompressed cache). */
  chunkSource(cacheDirectory: string): ChunkSource {
    const cache = { directory: cacheDirectory, numShards: 128, capacity: 10_000 };
    return chunkSourceFor({ cache, readOnlyCaches: [] }, this.store);
  }

  async stop(): Promise<void> {
    await this.server.stop();
  }

  async #make(sizeMiB: number): Promise<BenchDatabase> {
    await mkdir(join(this.work, "db"), { recursive: true });
    const name = `app-${sizeMiB}`;
    const path = join(this.work, "db", `${name}.db`);
    this.#progress(`creating a ${sizeMiB} MiB database of random rows`);
    const info = await createRandomDatabase(path, sizeMiB * 1048576);
    const db = { name, path, sizeMiB, bytes: info.bytes, rows: info.rows };
    this.#progress(`syncing ${name} to s3rver`);
    await this.sync(db);
    return db;
  }
}

/** S3Store's client options for `address`. */
export function storeOptions(address: StoreAddress) {
  const { bucket, endpoint, region, accessKeyId, secretAccessKey } = address;
  return { bucket, endpoint, region, credentials: { accessKeyId, secretAccessKey } };
}
