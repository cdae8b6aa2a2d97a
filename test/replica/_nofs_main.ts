/**
 * Opens a wasm replica from S3 and prints what it read, for a test that runs it in a Deno process allowed
 * only to read the sqlite-wasm binary and to reach 127.0.0.1: no writes, no environment, no other files.
 *
 * Usage: deno run --allow-read=<sqlite-wasm dist> --allow-net=127.0.0.1 _nofs_main.ts '<s3 json>'
 *
 * @module
 */

import { openReplica } from "../../src/replica/open.ts";
import { S3Store } from "../../src/store/s3.ts";

const s3 = JSON.parse(process.argv[2] ?? Deno.args[0] ?? "{}");
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
  await Deno.writeTextFile("nofs-probe.txt", "x");
} catch (error) {
  writeDenied = error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied;
}
console.log(
  JSON.stringify({ sum, sequence: replica.sequence, engine: replica.status().engine, writeDenied }),
);
replica.close();
