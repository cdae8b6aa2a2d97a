import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pruneDatabase } from "../../src/history/prune.ts";
import { loadLatest, loadSequence } from "../../src/manifest/catalog.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { S3Store } from "../../src/store/s3.ts";
import { checkWriterDb } from "../_helpers/sqlite_check.ts";
import { type S3TestServer, startS3Server } from "../_helpers/s3_server.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { assertBytes } from "../_helpers/assert.ts";
import { ageFiles, cli, objectKeys, referencedKeys } from "./_fixtures.ts";
import { makeDb } from "../_helpers/writer.ts";

const DAY = 24 * 3_600_000;

describe("tessera gc against a real S3 server (s3rver)", () => {
  let server: S3TestServer;
  let dir: string;

  before(async () => {
    server = await startS3Server();
    dir = await makeTempDir("gc-s3");
  });
  after(async () => {
    await server?.stop();
    await removeDir(dir);
  });

  it("a dry run lists the unreferenced chunks and deletes nothing; the real run deletes exactly them", async () => {
    const s3 = new S3Store({
      bucket: server.bucket,
      endpoint: server.endpoint,
      region: server.region,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    }, { prefix: "gc/" });
    const db = join(dir, "app.db");
    await makeDb(db, 300, { payload: 1500 });
    const options = { stores: [s3], hostname: "s3-host", spoolDir: join(dir, "spool"), chunkSize: 4096 };
    const { name } = await syncDatabase(db, options);
    const change = createClient({ url: `file:${db}` });
    await change.execute("UPDATE items SET payload = zeroblob(1500) WHERE k % 5 != 0");
    change.close();
    // Most chunks change: the publish moves the rest of snapshot 1's pack into its own (repacking), so that
    // pack ends up referenced by no kept snapshot.
    await syncDatabase(db, options);
    const first = await referencedKeys(s3, (await loadSequence(s3, name, 1)).manifest);
    const latest = await referencedKeys(s3, (await loadLatest(s3, name)).manifest);
    const orphans = [...first].filter((key) => !latest.has(key)).sort();
    assert.ok(orphans.some((key) => key.startsWith("packs/")), `snapshot 1 alone uses: ${orphans}`);
    await pruneDatabase(s3, name, { keepLast: 1 });
    // s3rver reports an object's file time as its Last-Modified.
    assert.ok(await ageFiles(server.directory, 3 * DAY, (path) => path.endsWith("._S3rver_object")) > 0);
    const before = await objectKeys(s3);

    const env = {
      AWS_ACCESS_KEY_ID: server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      AWS_REGION: server.region,
      AWS_ENDPOINT_URL: server.endpoint,
      TESSERA_CONFIG: "",
    };
    const tessera = cli(env);
    const target = `s3://${server.bucket}/gc`;
    const dry = await tessera("gc", "--store", target, "--grace", "1h", "--dry-run", "--json");
    assert.equal(dry.code, 0, dry.err);
    const planned = JSON.parse(dry.out);
    assert.equal(planned.dryRun, true);
    assert.deepEqual(planned.deleted.chunks.map((c: { key: string }) => c.key), orphans);
    assert.equal(planned.deleted.count, orphans.length);
    assert.ok(planned.deleted.bytes > 0);
    assert.deepEqual(await objectKeys(s3), before, "a dry run deletes nothing");
    assert.ok(!dry.out.includes(server.secretAccessKey) && !dry.err.includes(server.secretAccessKey));

    const text = await tessera("gc", "--store", target, "--grace", "1h", "--dry-run");
    assert.equal(text.code, 0, text.err);
    assert.match(
      text.out,
      new RegExp(`would delete ${orphans.length} chunks, \\d+ bytes \\(dry run: nothing deleted\\)`),
    );
    assert.ok(text.out.includes(`would delete  ${orphans[0]}  `));

    const real = await tessera("gc", "--store", target, "--grace", "1h", "--json");
    assert.equal(real.code, 0, real.err);
    assert.deepEqual(JSON.parse(real.out).deleted.chunks.map((c: { key: string }) => c.key), orphans);
    assert.deepEqual(await objectKeys(s3), before.filter((key) => !orphans.includes(key)));

    const out = join(dir, "restored.db");
    const restored = await tessera("restore", "--name", name, "--store", target, "--out", out);
    assert.equal(restored.code, 0, restored.err);
    assert.equal((await checkWriterDb(out)).integrity, "ok");
    assertBytes(new Uint8Array(await readFile(out)), new Uint8Array(await readFile(db)), "restored database");
  });
});
