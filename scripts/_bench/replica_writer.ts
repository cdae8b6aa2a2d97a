/**
 * The refresh-lag section's writer, a process of its own as an application's writer is: it adds table
 * `bench_lag` and publishes, prints `{"ready":true}`, then for every number read from stdin commits one row
 * through @libsql/client, publishes with syncDatabase, and prints one JSON line with the wall-clock times
 * (ms since the epoch) at which the commit returned and the snapshot was published.
 *
 * Usage: replica_writer.ts '{"path":…,"name":…,"hostname":…,"spoolDir":…,"address":{…}}'
 *
 * @module
 */

import { createClient } from "@libsql/client";
import process from "node:process";
import { createInterface } from "node:readline";
import { syncDatabase } from "../../src/write/sync.ts";
import { S3Store } from "../../src/store/s3.ts";
import { type StoreAddress, storeOptions } from "./replica_fixture.ts";
import { wallMs } from "./replica_report.ts";

/** What the writer is told, as its one argument. */
export interface WriterConfig {
  path: string;
  name: string;
  hostname: string;
  spoolDir: string;
  address: StoreAddress;
}

/** What it prints per commit. */
export interface WriterLine {
  k: number;
  committed: number;
  published: number;
  sequence: number;
  /** Chunks the sync read from the source, and uploaded. */
  chunksRead: number;
  chunksUploaded: number;
}

const config = JSON.parse(process.argv[2] ?? "") as WriterConfig;
const store = new S3Store(storeOptions(config.address), { prefix: config.address.prefix });
const publish = () =>
  syncDatabase(config.path, {
    stores: [store],
    hostname: config.hostname,
    name: config.name,
    spoolDir: config.spoolDir,
  });
const db = createClient({ url: `file:${config.path}` });
try {
  await db.execute("CREATE TABLE IF NOT EXISTS bench_lag (k INTEGER PRIMARY KEY, at REAL NOT NULL)");
  await publish();
  console.log(JSON.stringify({ ready: true }));
  for await (const line of createInterface({ input: process.stdin })) {
    const k = Number(line);
    if (!Number.isInteger(k)) throw new Error(`Cannot commit row "${line}": expected a whole number`);
    await db.execute({ sql: "INSERT INTO bench_lag (k, at) VALUES (?, ?)", args: [k, wallMs()] });
    const committed = wallMs();
    const report = await publish();
    const out: WriterLine = {
      k,
      committed,
      published: wallMs(),
      sequence: report.sequence,
      chunksRead: report.chunks.read,
      chunksUploaded: report.chunks.uploaded,
    };
    console.log(JSON.stringify(out));
  }
} finally {
  db.close();
}
