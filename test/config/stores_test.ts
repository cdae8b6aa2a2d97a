import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadConfig } from "../../src/config/load.ts";
import { describeTarget, openTarget } from "../../src/config/stores.ts";
import type { S3TargetConfig } from "../../src/config/types.ts";
import { HttpStore } from "../../src/store/http.ts";
import { LocalStore } from "../../src/store/local.ts";
import { S3Store } from "../../src/store/s3.ts";
import { SplitStore } from "../../src/store/split.ts";
import { type S3TestServer, startS3Server } from "../_helpers/s3_server.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { configError } from "./_assert.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("openTarget()", () => {
  let s3: S3TestServer;
  let dir: string;
  let env: Record<string, string>;
  before(async () => {
    s3 = await startS3Server({ buckets: ["verneuil-manifests", "verneuil-chunks"] });
    dir = await makeTempDir("config-stores");
    env = { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
  });
  after(async () => {
    await s3?.stop();
    await removeDir(dir);
  });

  it("stores chunks of a Verneuil target in its chunk bucket and everything else in its manifest bucket", async () => {
    const config = await loadConfig({
      arg: JSON.stringify({
        replication_targets: [{
          s3: {
            region: "us-east-1",
            endpoint: s3.endpoint,
            chunk_bucket: "verneuil-chunks",
            manifest_bucket: "verneuil-manifests",
            domain_addressing: false,
          },
        }],
      }),
      env: {},
    });
    const target = config.targets[0] as S3TargetConfig;
    const store = openTarget(target, env);
    assert.ok(store instanceof SplitStore);
    await store.put("chunks/ab/abcdef", bytes("chunk"));
    await store.put("packs/cd/cdef01", bytes("pack"));
    await store.put("dbs/app/pointer", bytes("pointer"));
    const location = { endpoint: s3.endpoint, region: s3.region, credentials: null };
    const chunks = new S3Store({ ...location, bucket: "verneuil-chunks" });
    const manifests = new S3Store({ ...location, bucket: "verneuil-manifests" });
    assert.equal((await chunks.head("chunks/ab/abcdef")).status, "ok");
    assert.equal((await chunks.head("dbs/app/pointer")).status, "not_found");
    assert.equal((await manifests.head("dbs/app/pointer")).status, "ok");
    assert.equal((await manifests.head("chunks/ab/abcdef")).status, "not_found");
    // Packs are data too: they live in the chunk bucket, where its lifecycle and touch policies apply.
    assert.equal((await chunks.head("packs/cd/cdef01")).status, "ok");
    assert.equal((await manifests.head("packs/cd/cdef01")).status, "not_found");
    const names: string[] = [];
    for await (const item of store.list("")) names.push(item.type === "object" ? item.key : item.prefix);
    assert.deepEqual(names, ["chunks/ab/abcdef", "dbs/app/pointer", "packs/cd/cdef01"]);
  });

  it("opens a one-bucket S3 target as a plain S3 store with its prefix, path style and endpoint", async () => {
    const store = openTarget(
      {
        kind: "s3",
        bucket: "verneuil-manifests",
        prefix: "team/",
        endpoint: s3.endpoint,
        forcePathStyle: true,
      },
      env,
    );
    assert.ok(store instanceof S3Store);
    assert.equal(store.prefix, "team/");
    assert.equal(store.client.url, `${s3.endpoint}/verneuil-manifests`);
    await store.put("dbs/x/pointer", bytes("p"));
    const whole = new S3Store({ bucket: "verneuil-manifests", endpoint: s3.endpoint, credentials: null });
    assert.equal((await whole.head("team/dbs/x/pointer")).status, "ok");
  });

  it("keeps chunks under their own prefix in the same bucket when only the chunk prefix differs", async () => {
    const store = openTarget({
      kind: "s3",
      bucket: "verneuil-manifests",
      prefix: "db/",
      chunkPrefix: "shared/",
      endpoint: s3.endpoint,
    }, env);
    await store.put("chunks/00/x", bytes("c"));
    const whole = new S3Store({ bucket: "verneuil-manifests", endpoint: s3.endpoint, credentials: null });
    assert.equal((await whole.head("shared/chunks/00/x")).status, "ok");
    assert.equal((await whole.head("db/chunks/00/x")).status, "not_found");
  });

  it("takes the region and endpoint a target leaves out from AWS_* variables", () => {
    const store = openTarget({ kind: "s3", bucket: "backups", prefix: "" }, { AWS_REGION: "eu-west-3" });
    assert.ok(store instanceof S3Store);
    assert.equal(store.client.url, "https://backups.s3.eu-west-3.amazonaws.com");
    const custom = openTarget({ kind: "s3", bucket: "b", prefix: "", region: "ap-south-1" }, {
      AWS_REGION: "eu-west-3",
      AWS_ENDPOINT_URL: "http://127.0.0.1:1",
    });
    assert.ok(custom instanceof S3Store);
    assert.equal(custom.client.region, "ap-south-1");
    assert.equal(custom.client.url, "http://127.0.0.1:1/b");
  });

  it("opens directory and HTTP targets", async () => {
    const local = openTarget({ kind: "directory", directory: dir });
    assert.ok(local instanceof LocalStore);
    await local.put("a", bytes("a"));
    assert.equal(local.root, dir);
    const http = openTarget({ kind: "http", url: "https://cdn.example.com/db/" });
    assert.ok(http instanceof HttpStore);
    assert.equal(http.capabilities.write, false);
  });

  it("fails with CONFIG_INVALID naming the target when Verneuil's placeholders reach S3", async () => {
    const config = await loadConfig({
      arg: JSON.stringify({
        replication_targets: [{
          s3: {
            region: "us-east-2",
            chunk_bucket: "A BUCKET NAME LIKE my-verneuil-chunks",
            manifest_bucket: "A BUCKET NAME LIKE my-verneuil-manifests",
            domain_addressing: true,
          },
        }],
      }),
      env: {},
    });
    await configError(
      () => openTarget(config.targets[0] as S3TargetConfig, env),
      [
        "Cannot open target s3://A BUCKET NAME LIKE my-verneuil-manifests/",
        'Cannot use bucket "A BUCKET NAME',
      ],
      [s3.secretAccessKey === s3.accessKeyId ? "\0" : s3.secretAccessKey],
    );
  });

  it("fails with CONFIG_INVALID when the environment holds half a credential pair, showing neither half", async () => {
    await configError(
      () => openTarget({ kind: "s3", bucket: "b", prefix: "" }, { AWS_ACCESS_KEY_ID: "AKIAHALFPAIR" }),
      ["Cannot open target s3://b/", "AWS_SECRET_ACCESS_KEY is not"],
      ["AKIAHALFPAIR"],
    );
  });
});

describe("describeTarget()", () => {
  it("names each kind without credentials or queries", () => {
    assert.equal(describeTarget({ kind: "s3", bucket: "b", prefix: "p/" }), "s3://b/p/");
    assert.equal(
      describeTarget({
        kind: "s3",
        bucket: "m",
        prefix: "",
        region: "us-east-2",
        endpoint: "https://s3.example.com",
        forcePathStyle: false,
        chunkBucket: "c",
      }),
      "s3://m/ (region us-east-2, endpoint https://s3.example.com, virtual-host addressing; chunks in s3://c/)",
    );
    assert.equal(
      describeTarget({ kind: "s3", bucket: "m", prefix: "a/", chunkPrefix: "shared/", forcePathStyle: true }),
      "s3://m/a/ (path-style addressing; chunks in s3://m/shared/)",
    );
    assert.equal(
      describeTarget({ kind: "s3", bucket: "m", prefix: "", chunkBucket: "c" }),
      "s3://m/ (chunks in s3://c/)",
    );
    assert.equal(describeTarget({ kind: "directory", directory: "/srv/backups" }), "/srv/backups");
    assert.equal(
      describeTarget({ kind: "http", url: "https://user:hunter2@cdn.example.com/db?token=abc" }),
      "https://***@cdn.example.com/db",
    );
  });
});
