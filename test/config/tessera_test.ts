import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { loadConfig, normalizeConfig } from "../../src/config/load.ts";
import type { TesseraConfig } from "../../src/config/types.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { configError } from "./_assert.ts";

const FULL = {
  targets: [
    "s3://backups/team/app",
    "file:///srv/tessera%20backups",
    {
      s3: {
        bucket: "manifests",
        prefix: "/prod",
        region: "eu-west-1",
        endpoint: "https://s3.example.com",
        force_path_style: true,
        chunk_bucket: "chunks",
        chunk_prefix: "shared",
      },
    },
    { directory: "/mnt/nfs/tessera" },
  ],
  read_only: ["https://cdn.example.com/db", { http: "http://10.0.0.5:8080/" }, "s3://archive"],
  cache: { directory: "/var/cache/tessera", num_shards: 64, capacity: 5000 },
  read_only_caches: ["/var/cache/other", { directory: "/var/cache/third", num_shards: 16 }],
  spool_dir: "/var/lib/tessera",
  chunk_size: 65536,
};

const FULL_NORMALISED: TesseraConfig = {
  targets: [
    { kind: "s3", bucket: "backups", prefix: "team/app/" },
    { kind: "directory", directory: "/srv/tessera backups" },
    {
      kind: "s3",
      bucket: "manifests",
      prefix: "prod/",
      region: "eu-west-1",
      endpoint: "https://s3.example.com",
      forcePathStyle: true,
      chunkBucket: "chunks",
      chunkPrefix: "shared/",
    },
    { kind: "directory", directory: "/mnt/nfs/tessera" },
  ],
  readOnly: [
    { kind: "http", url: "https://cdn.example.com/db" },
    { kind: "http", url: "http://10.0.0.5:8080/" },
    { kind: "s3", bucket: "archive", prefix: "" },
  ],
  cache: { directory: "/var/cache/tessera", numShards: 64, capacity: 5000 },
  readOnlyCaches: [
    { directory: "/var/cache/other", numShards: 128 },
    { directory: "/var/cache/third", numShards: 16 },
  ],
  spoolDir: "/var/lib/tessera",
  chunkSize: 65536,
};

const load = (json: unknown) => loadConfig({ arg: JSON.stringify(json), env: {}, cwd: "/work" });
const SOURCE = "-c (inline JSON)";

describe("loadConfig() with Tessera's shape", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("config-tessera");
  });
  after(() => removeDir(dir));

  it("normalises every field, from a file and from inline JSON alike", async () => {
    const path = join(dir, "tessera.json");
    await writeFile(path, JSON.stringify(FULL, null, 2));
    assert.deepEqual(await loadConfig({ arg: path, env: {} }), FULL_NORMALISED);
    assert.deepEqual(await load(FULL), FULL_NORMALISED);
    assert.deepEqual(normalizeConfig(FULL), FULL_NORMALISED);
  });

  it("fills cache defaults and accepts a cache given as a bare directory", async () => {
    assert.deepEqual((await load({ cache: "/c" })).cache, {
      directory: "/c",
      numShards: 128,
      capacity: 10000,
    });
    assert.deepEqual((await load({ cache: { directory: "c", capacity: 7 } })).cache, {
      directory: "/work/c",
      numShards: 128,
      capacity: 7,
    });
  });

  it("keeps a chunk bucket or prefix only when it differs from the main one", async () => {
    const config = await load({
      targets: [{ s3: { bucket: "b", prefix: "p", chunk_bucket: "b", chunk_prefix: "p/" } }],
    });
    assert.deepEqual(config.targets, [{ kind: "s3", bucket: "b", prefix: "p/" }]);
  });

  it("accepts an empty object as an empty config", async () => {
    assert.deepEqual(await load({}), { targets: [], readOnly: [], readOnlyCaches: [] });
  });

  it("accepts every power of two from 4 KiB to 1 MiB as the chunk size, and nothing else", async () => {
    for (let size = 4096; size <= 1048576; size *= 2) {
      assert.equal((await load({ chunk_size: size })).chunkSize, size);
    }
    for (const bad of [2048, 5000, 2097152, 65536.5, "65536", -4096]) {
      await configError(
        () => load({ chunk_size: bad }),
        [SOURCE, `chunk_size is ${JSON.stringify(bad)}`, "a power of two from 4096 to 1048576"],
      );
    }
  });
});

describe("loadConfig() errors in Tessera's shape", () => {
  it("names unknown top-level keys and suggests near misses", async () => {
    await configError(
      () => load({ tragets: [] }),
      [SOURCE, 'tragets is not a known key (did you mean "targets"?)', "expected at the top level: targets"],
    );
    await configError(() => load({ chunkSize: 4096 }), [
      'chunkSize is not a known key (did you mean "chunk_size"?)',
    ]);
    await configError(
      () => load({ replication_target: [] }),
      ['replication_target is not a known key (did you mean "replication_targets"?)'],
    );
    const message = await configError(() => load({ targets: [], colour: "blue", zzz: 1 }), ["colour", "zzz"]);
    assert.ok(!message.includes("did you mean"), message);
  });

  it("names bad targets by index, with the value and the shapes a target can take", async () => {
    await configError(
      () => load({ targets: ["s3://a", 42] }),
      [SOURCE, "targets[1] is 42", '"s3://bucket/prefix"', '{"directory": "/dir"}'],
    );
    await configError(() => load({ targets: "s3://a" }), [
      'targets is "s3://a"',
      "expected an array of targets",
    ]);
    await configError(() => load({ targets: [{ s3: { bucket: "a" }, directory: "/x" }] }), [
      "targets[0] is an object",
    ]);
    await configError(() => load({ targets: ["ftp://host/x"] }), ['targets[0] is "ftp://host/x"']);
    await configError(() => load({ targets: ["file://server/share"] }), ["targets[0]", "file:///abs/dir"]);
    await configError(
      () => load({ targets: [{ local: "/x" }] }),
      ['targets[0].local is not a known key (did you mean "directory"'],
    );
  });

  it("refuses an HTTP store as a writable target and points to read_only", async () => {
    await configError(
      () => load({ targets: ["https://cdn.example.com/db"] }),
      [SOURCE, "targets[0] is an HTTP store", 'list it under "read_only"'],
    );
  });

  it("names bad S3 fields by their full path", async () => {
    await configError(() => load({ targets: [{ s3: { prefix: "x" } }] }), [
      "targets[0].s3.bucket is missing",
    ]);
    await configError(
      () => load({ targets: [{ s3: { bucket: "b", regoin: "eu-west-1" } }] }),
      ['targets[0].s3.regoin is not a known key (did you mean "region"?)'],
    );
    await configError(
      () => load({ read_only: [{ s3: { bucket: "b", manifest_bucket: "m" } }] }),
      ["read_only[0].s3.manifest_bucket is not a known key", "Verneuil's manifest_bucket"],
    );
    await configError(
      () => load({ targets: [{ s3: { bucket: "b", prefix: "a//b" } }] }),
      ['targets[0].s3.prefix is "a//b"', "a key prefix"],
    );
    await configError(() => load({ targets: ["s3://b/a/../c"] }), [
      'targets[0] is "s3://b/a/../c"',
      "a key prefix",
    ]);
    await configError(
      () => load({ targets: [{ s3: { bucket: "b", force_path_style: "yes" } }] }),
      ['targets[0].s3.force_path_style is "yes"', "true or false"],
    );
  });

  it("names bad cache fields by their full path", async () => {
    await configError(
      () => load({ cache: { directory: "/c", num_shards: -1 } }),
      [SOURCE, "cache.num_shards is -1", "a whole number from 0 to 65536"],
    );
    await configError(() => load({ cache: { directory: "/c", capacity: 0 } }), ["cache.capacity is 0"]);
    await configError(() => load({ cache: { num_shards: 1 } }), ["cache.directory is missing"]);
    await configError(() => load({ cache: 5 }), ["cache is 5", '"/dir" or {"directory"']);
    await configError(() => load({ read_only_caches: [5] }), ["read_only_caches[0] is 5"]);
    await configError(
      () => load({ read_only_caches: [{ directory: "/d", capacity: 9 }] }),
      ["read_only_caches[0].capacity is not a known key"],
    );
    await configError(() => load({ spool_dir: "" }), ['spool_dir is ""', "a non-empty string"]);
  });

  it("never echoes credentials, whether in fields or in URLs", async () => {
    const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    await configError(
      () => load({ targets: [{ s3: { bucket: "b", secret_access_key: secret } }] }),
      [SOURCE, "targets[0].s3.secret_access_key holds credentials", "AWS_ACCESS_KEY_ID"],
      [secret],
    );
    await configError(
      () => load({ targets: [`s3://AKIAEXAMPLE:${secret}@bucket/prefix`] }),
      ["targets[0] holds credentials in its URL"],
      [secret, "AKIAEXAMPLE"],
    );
    await configError(
      () => load({ read_only: ["https://user:hunter2@cdn.example.com/db"] }),
      ["read_only[0] holds credentials in its URL"],
      ["hunter2"],
    );
    await configError(
      () => load({ targets: [{ directory: "/x", token: secret }] }),
      ["targets[0] is an object"],
      [secret],
    );
    await configError(
      () => load({ read_only: ["https://cdn.example.com/db?X-Amz-Signature=abc123", { http: 5 }] }),
      ["read_only[1].http is 5"],
      ["abc123"],
    );
  });
});

describe("loadConfig() with keys that name Object's own properties", () => {
  it("reports constructor and __proto__ as unknown keys", async () => {
    await configError(
      () => loadConfig({ arg: '{"constructor": 1, "__proto__": {"targets": []}}', env: {} }),
      ["constructor is not a known key; __proto__ is not a known key"],
    );
    await configError(
      () => load({ targets: [{ constructor: "/x" }] }),
      ["targets[0].constructor is not a known key;"],
    );
  });
});
