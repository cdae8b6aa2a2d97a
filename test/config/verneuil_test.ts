import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import type { TesseraConfig } from "../../src/config/types.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { configError } from "./_assert.ts";

// The configs of Verneuil's verneuilctl walkthrough, placeholders and all.
const FIRST_EXAMPLE = `{
  "make_default": true,
  "replication_spooling_dir": "/tmp/verneuil/",
  "replication_targets": [
    {
      "s3": {
        "region": "SOMETHING LIKE us-east-2 SET IT TO THE CORRECT VALUE",
        "chunk_bucket": "A BUCKET NAME LIKE my-verneuil-chunks",
        "manifest_bucket": "A BUCKET NAME LIKE my-verneuil-manifests",
        "domain_addressing": true
      }
    }
  ]
}
`;

const LOCAL_BLOCK = `
    {
      "local": {
        "directory": "/tmp/verneuil-cache/",
        "num_shards": 128,
        "capacity": 10000
      }
    }`;

const SECOND_EXAMPLE = `{
  "make_default": true,
  "replication_spooling_dir": "/tmp/verneuil/",
  "replication_targets": [
    {
      "s3": {
        "region": "us-east-2",
        "chunk_bucket": "pkhuong-verneuil-chunks",
        "manifest_bucket": "pkhuong-verneuil-manifests",
        "domain_addressing": true
      }
    },${LOCAL_BLOCK}
  ]
}
`;

// The snapshot VFS document's example carries // comments, which JSON (and Verneuil's parser) rejects.
const SNAPSHOT_EXAMPLE = `{
  "replication_targets": [
    {
      "s3": {
        "region": "us-east-1",
        "chunk_bucket": "verneuil_chunks",
        "manifest_bucket": "verneuil_manifests",
        "domain_addressing": true  // or false for the legacy bucket-as-path interface
      }
    },
    {
      "local": {  // cache up to ~20_000 chunk files
        "directory": "/tmp/verneuil-cache",
        "num_shards": 100,
        "capacity": 20000
      }
    }
  ]
}`;

const load = (json: unknown) => loadConfig({ arg: JSON.stringify(json), env: {}, cwd: "/work" });
const SOURCE = "-c (inline JSON)";

function s3(fields: Record<string, unknown>) {
  return { s3: { region: "us-east-1", chunk_bucket: "c", manifest_bucket: "m", ...fields } };
}

describe("loadConfig() with Verneuil's shape", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("config-verneuil");
  });
  after(() => removeDir(dir));

  it("reads the first walkthrough config, placeholders included, from @file", async () => {
    const path = join(dir, "verneuil.json");
    await writeFile(path, FIRST_EXAMPLE);
    const expected: TesseraConfig = {
      targets: [{
        kind: "s3",
        bucket: "A BUCKET NAME LIKE my-verneuil-manifests",
        prefix: "",
        region: "SOMETHING LIKE us-east-2 SET IT TO THE CORRECT VALUE",
        forcePathStyle: false,
        chunkBucket: "A BUCKET NAME LIKE my-verneuil-chunks",
      }],
      readOnly: [],
      readOnlyCaches: [],
      spoolDir: "/tmp/verneuil",
    };
    assert.deepEqual(await loadConfig({ arg: `@${path}`, env: {} }), expected);
  });

  it("reads the walkthrough config with its local cache block, from TESSERA_CONFIG", async () => {
    const path = join(dir, "verneuil-cache.json");
    await writeFile(path, SECOND_EXAMPLE);
    const expected: TesseraConfig = {
      targets: [{
        kind: "s3",
        bucket: "pkhuong-verneuil-manifests",
        prefix: "",
        region: "us-east-2",
        forcePathStyle: false,
        chunkBucket: "pkhuong-verneuil-chunks",
      }],
      readOnly: [],
      cache: { directory: "/tmp/verneuil-cache", numShards: 128, capacity: 10000 },
      readOnlyCaches: [],
      spoolDir: "/tmp/verneuil",
    };
    assert.deepEqual(await loadConfig({ env: { TESSERA_CONFIG: `@${path}` } }), expected);
    assert.deepEqual(await loadConfig({ arg: SECOND_EXAMPLE, env: {} }), expected);
  });

  it("reads the snapshot document's config once its comments are gone, and names the first comment", async () => {
    const stripped = SNAPSHOT_EXAMPLE.replace(/ *\/\/.*$/gm, "");
    assert.deepEqual(await loadConfig({ arg: stripped, env: {} }), {
      targets: [{
        kind: "s3",
        bucket: "verneuil_manifests",
        prefix: "",
        region: "us-east-1",
        forcePathStyle: false,
        chunkBucket: "verneuil_chunks",
      }],
      readOnly: [],
      cache: { directory: "/tmp/verneuil-cache", numShards: 100, capacity: 20000 },
      readOnlyCaches: [],
    });
    await configError(
      () => loadConfig({ arg: SNAPSHOT_EXAMPLE, env: {} }),
      [SOURCE, "invalid JSON at line 8, column 36", "a comment (JSON has none)"],
    );
  });

  it("reads read_only caches, later local targets and nested read-only sources", async () => {
    const config = await load({
      replication_targets: [
        { local: { directory: "/var/cache/a", num_shards: 16, capacity: 100 } },
        { local: { directory: "/var/cache/b", num_shards: 4, capacity: 100 } },
        { read_only: { directory: "/var/cache/other", num_shards: 100, append_instance_id: false } },
        { read_only: { directory: "cache-plain" } },
        { read_only: { local: { directory: "/var/cache/c", num_shards: 8, capacity: 5 } } },
        { read_only: s3({ domain_addressing: false, endpoint: "http://127.0.0.1:9000" }) },
      ],
    });
    assert.deepEqual(config, {
      targets: [],
      readOnly: [{
        kind: "s3",
        bucket: "m",
        prefix: "",
        region: "us-east-1",
        endpoint: "http://127.0.0.1:9000",
        forcePathStyle: true,
        chunkBucket: "c",
      }],
      cache: { directory: "/var/cache/a", numShards: 16, capacity: 100 },
      readOnlyCaches: [
        { directory: "/var/cache/b", numShards: 4 },
        { directory: "/var/cache/other", numShards: 100 },
        { directory: "/work/cache-plain", numShards: 0 },
        { directory: "/var/cache/c", numShards: 8 },
      ],
    });
  });

  it("keeps every S3 target in order and one bucket when chunks and manifests share it", async () => {
    const config = await load({
      replication_targets: [
        {
          s3: { region: "eu-west-1", chunk_bucket: "same", manifest_bucket: "same", domain_addressing: true },
        },
        s3({ region: "minio", endpoint: "http://minio:9000", domain_addressing: false }),
      ],
    });
    assert.deepEqual(config.targets, [
      { kind: "s3", bucket: "same", prefix: "", region: "eu-west-1", forcePathStyle: false },
      {
        kind: "s3",
        bucket: "m",
        prefix: "",
        region: "minio",
        endpoint: "http://minio:9000",
        forcePathStyle: true,
        chunkBucket: "c",
      },
    ]);
  });

  it("reads a dotted region without an endpoint as Verneuil does: region name, then host", async () => {
    const config = await load({ replication_targets: [s3({ region: "nyc3.digitaloceanspaces.com" })] });
    assert.deepEqual(config.targets[0], {
      kind: "s3",
      bucket: "m",
      prefix: "",
      region: "nyc3",
      endpoint: "https://digitaloceanspaces.com",
      chunkBucket: "c",
    });
  });

  it("accepts and ignores keys only Verneuil uses", async () => {
    const config = await load({
      make_default: false,
      tempdir: "/tmp",
      replication_spooling_dir_permissions: 0o750,
      snapshot_loading_policy: "ConsistentAfterFirstRead",
      replication_targets: [s3({ create_buckets_on_demand: true })],
    });
    assert.deepEqual(config.targets, [
      { kind: "s3", bucket: "m", prefix: "", region: "us-east-1", chunkBucket: "c" },
    ]);
  });
});

describe("loadConfig() errors in Verneuil's shape", () => {
  it("names a bad num_shards by its full path, value and expected range", async () => {
    const message = await configError(
      () =>
        load({
          replication_targets: [s3({}), { local: { directory: "/c", num_shards: "many", capacity: 1 } }],
        }),
      [
        SOURCE,
        'replication_targets[1].local.num_shards is "many"',
        "expected a whole number from 0 to 65536",
      ],
    );
    assert.match(message, /^Cannot load config from /);
  });

  it("names missing and mistyped S3 fields", async () => {
    await configError(
      () =>
        load({ replication_targets: [{ s3: { region: "r", chunk_bucket: "c", domain_addressing: true } }] }),
      [SOURCE, "replication_targets[0].s3.manifest_bucket is missing", "a non-empty string"],
    );
    await configError(
      () => load({ replication_targets: [s3({ domain_addressing: "yes" })] }),
      ['replication_targets[0].s3.domain_addressing is "yes"', "true or false"],
    );
    await configError(
      () => load({ replication_targets: [s3({ endpoint: "ftp://host" })] }),
      ['replication_targets[0].s3.endpoint is "ftp://host"', "http:// or https://"],
    );
    await configError(
      () => load({ replication_targets: [s3({ bucket: "b" })] }),
      ['replication_targets[0].s3.bucket is not a known key (did you mean "manifest_bucket" and "chunk_bucket"?)'],
    );
  });

  it("names unknown target kinds, entries with two kinds and misspelt top-level keys", async () => {
    await configError(
      () => load({ replication_targets: [{ gcs: { bucket: "b" } }] }),
      [SOURCE, "replication_targets[0].gcs is not a known key", "s3, local, read_only"],
    );
    await configError(
      () => load({ replication_targets: [{ s3: {}, local: {} }] }),
      ["replication_targets[0] is an object", 'expected one of {"s3": {...}}'],
    );
    await configError(
      () => load({ make_default: true, replication_target: [] }),
      ['replication_target is not a known key (did you mean "replication_targets"?)'],
    );
    await configError(
      () => load({ replication_targets: [{ locale: {} }] }),
      ['replication_targets[0].locale is not a known key (did you mean "local"?)'],
    );
    await configError(
      () => load({ replication_targets: { s3: {} } }),
      ["replication_targets is an object", "expected an array of"],
    );
    await configError(
      () => load({ replication_spooling_dir: 5, replication_targets: [] }),
      ["replication_spooling_dir is 5", "a non-empty string"],
    );
  });

  it("never echoes credentials put in a target", async () => {
    const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    await configError(
      () => load({ replication_targets: [s3({ secret_access_key: secret, access_key_id: "AKIAEXAMPLE" })] }),
      [SOURCE, "replication_targets[0].s3.", "credentials", "AWS_SECRET_ACCESS_KEY"],
      [secret, "AKIAEXAMPLE"],
    );
    await configError(
      () => load({ replication_targets: [s3({ endpoint: "https://AKIAEXAMPLE:hunter2@s3.example.com" })] }),
      ["replication_targets[0].s3.endpoint holds credentials"],
      ["hunter2", "AKIAEXAMPLE"],
    );
    // A secret with a slash does not parse as a URL: the value is shown with its user part hidden.
    await configError(
      () => load({ replication_targets: [s3({ endpoint: `https://AKIAEXAMPLE:${secret}@s3.example.com` })] }),
      ['replication_targets[0].s3.endpoint is "https://***@s3.example.com"'],
      [secret, "AKIAEXAMPLE", "wJalr"],
    );
    await configError(
      () => load({ replication_targets: [{ s3: {}, local: { token: secret } }] }),
      ["replication_targets[0] is an object"],
      [secret],
    );
  });
});
