/**
 * Opens a wasm replica from S3 and prints what it read, for a test that runs it where writing is not
 * allowed: a Deno process allowed only to read the sqlite-wasm binary and to reach 127.0.0.1, or (bundled
 * with esbuild) a Node process under `--experimental-permission` that may only read the code.
 *
 * Usage: deno run --allow-read=<sqlite-wasm dist> --allow-net=127.0.0.1 _nofs_main.ts '<s3 json>'
 *        node --experimental-permission --allow-fs-read=ROOT/* bundle.mjs '<s3 json>'
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
const replica = await openReplica("nofs", {
  store,
  env: {},
  hostname: "h",
  memoryCacheBytes: 1 << 20,
  pollIntervalMs: 0,
});
const sum = Number((await replica.execute("SELECT sum(x) FROM t")).rows[0]![0]);
let writeDenied = false;
try {
  writeFileSync("nofs-probe.txt", "x");
} catch (error) {
  // Node says ERR_ACCESS_DENIED; Deno throws its NotCapable error.
  writeDenied = (error as { code?: string }).code === "ERR_ACCESS_DENIED" ||
    (error as Error).name === "NotCapable";
}
console.log(
  JSON.stringify({ sum, sequence: replica.sequence, engine: replica.status().engine, writeDenied }),
);
replica.close();
