/**
 * Opens a wasm replica from S3 and prints what it read. A test bundles this file (`deno bundle`) and runs
 * it with Node under `--experimental-permission`, which lets it read the code and nothing else: no writes.
 *
 * Usage: node --experimental-permission --allow-fs-read=ROOT/* bundle.mjs '<s3 json>'
 *
 * @module
 */

import { writeFileSync } from "node:fs";
import { openReplica } from "../../src/replica/open.ts";
import { S3Store } from "../../src/store/s3.ts";

const s3 = JSON.parse(process.argv[2] ?? "{}");
const store = new S3Store({
  bucket: s3.bucket,
  endpoint: s3.endpoint,
  region: s3.region,
  credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
}, { prefix: s3.prefix });
const replica = await openReplica("nofs", { store, env: {}, hostname: "h", pollIntervalMs: 0 });
const sum = Number((await replica.execute("SELECT sum(x) FROM t")).rows[0]![0]);
let writeDenied = false;
try {
  writeFileSync("nofs-probe.txt", "x");
} catch (error) {
  writeDenied = (error as { code?: string }).code === "ERR_ACCESS_DENIED";
}
console.log(
  JSON.stringify({ sum, sequence: replica.sequence, engine: replica.status().engine, writeDenied }),
);
replica.close();
