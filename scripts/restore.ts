/**
 * Restoring from a script, with the library rather than the CLI:
 *
 *   deno run -A scripts/restore.ts --store s3://bucket/prefix --name NAME --out restored.db
 *   deno run -A scripts/restore.ts --store ./backups --source-path /srv/app.db --hostname db1 --out app.db
 *   bun scripts/restore.ts ...
 *
 * S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL, AWS_REGION).
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { deriveName, loadLatest, openStore, restoreImage, StoreChunkSource } from "../src/mod.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    store: { type: "string" },
    name: { type: "string" },
    "source-path": { type: "string" },
    hostname: { type: "string" },
    out: { type: "string" },
  },
});
if (!values.store || !values.out || !(values.name || (values["source-path"] && values.hostname))) {
  console.error(
    "usage: restore.ts --store STORE (--name NAME | --source-path PATH --hostname HOST) --out FILE",
  );
  process.exit(2);
}

const store = openStore(values.store, { env: process.env });
const name = values.name ?? await deriveName(values.hostname as string, values["source-path"] as string);
const { manifest } = await loadLatest(store, name);
const result = await restoreImage({ manifest, chunks: new StoreChunkSource(store), out: values.out });
console.log(
  `restored ${name} sequence ${manifest.sequence} to ${values.out}: ${result.bytes} bytes, sha256 ${result.sha256}`,
);
