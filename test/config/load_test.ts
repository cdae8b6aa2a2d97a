import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { loadConfig } from "../../src/config/load.ts";
import type { TesseraConfig } from "../../src/config/types.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { configError } from "./_assert.ts";

const TESSERA = { targets: ["s3://backups/app"], chunk_size: 65536 };
const TESSERA_NORMALISED: TesseraConfig = {
  targets: [{ kind: "s3", bucket: "backups", prefix: "app/" }],
  readOnly: [],
  readOnlyCaches: [],
  chunkSize: 65536,
};
const VERNEUIL = {
  replication_targets: [{
    s3: { region: "us-east-2", chunk_bucket: "c", manifest_bucket: "m", domain_addressing: true },
  }],
};
const VERNEUIL_NORMALISED: TesseraConfig = {
  targets: [{
    kind: "s3",
    bucket: "m",
    prefix: "",
    region: "us-east-2",
    forcePathStyle: false,
    chunkBucket: "c",
  }],
  readOnly: [],
  readOnlyCaches: [],
};

describe("loadConfig() sources", () => {
  let dir: string;
  let tessera: string;
  let verneuil: string;
  before(async () => {
    dir = await makeTempDir("config-load");
    tessera = join(dir, "tessera.json");
    verneuil = join(dir, "verneuil.json");
    await writeFile(tessera, JSON.stringify(TESSERA, null, 2));
    await writeFile(verneuil, JSON.stringify(VERNEUIL, null, 2));
  });
  after(() => removeDir(dir));

  it("reads each shape from a file path given to -c", async () => {
    assert.deepEqual(await loadConfig({ arg: tessera, env: {} }), TESSERA_NORMALISED);
    assert.deepEqual(await loadConfig({ arg: verneuil, env: {} }), VERNEUIL_NORMALISED);
  });

  it("reads each shape from @path, Verneuil's form", async () => {
    assert.deepEqual(await loadConfig({ arg: `@${tessera}`, env: {} }), TESSERA_NORMALISED);
    assert.deepEqual(await loadConfig({ arg: `@${verneuil}`, env: {} }), VERNEUIL_NORMALISED);
  });

  it("resolves a relative config path against cwd", async () => {
    assert.deepEqual(await loadConfig({ arg: "@tessera.json", env: {}, cwd: dir }), TESSERA_NORMALISED);
    assert.deepEqual(await loadConfig({ arg: "verneuil.json", env: {}, cwd: dir }), VERNEUIL_NORMALISED);
  });

  it("reads each shape from inline JSON given to -c", async () => {
    assert.deepEqual(await loadConfig({ arg: JSON.stringify(TESSERA), env: {} }), TESSERA_NORMALISED);
    assert.deepEqual(
      await loadConfig({ arg: `  ${JSON.stringify(VERNEUIL)}`, env: {} }),
      VERNEUIL_NORMALISED,
    );
  });

  it("reads TESSERA_CONFIG as a path, @path or inline JSON when -c is absent", async () => {
    for (const value of [tessera, `@${tessera}`, JSON.stringify(TESSERA)]) {
      assert.deepEqual(await loadConfig({ env: { TESSERA_CONFIG: value } }), TESSERA_NORMALISED, value);
    }
    assert.deepEqual(await loadConfig({ env: { TESSERA_CONFIG: `@${verneuil}` } }), VERNEUIL_NORMALISED);
  });

  it("prefers -c over TESSERA_CONFIG, and treats an empty TESSERA_CONFIG as unset", async () => {
    const env = { TESSERA_CONFIG: `@${tessera}` };
    assert.deepEqual(await loadConfig({ arg: `@${verneuil}`, env }), VERNEUIL_NORMALISED);
    // -c wins even when TESSERA_CONFIG is broken: it is never read.
    assert.deepEqual(
      await loadConfig({ arg: tessera, env: { TESSERA_CONFIG: "{oops" } }),
      TESSERA_NORMALISED,
    );
    assert.deepEqual(await loadConfig({ env: { TESSERA_CONFIG: "  " } }), {
      targets: [],
      readOnly: [],
      readOnlyCaches: [],
    });
  });

  it("returns an empty config with no source and no --store", async () => {
    assert.deepEqual(await loadConfig({ env: {} }), { targets: [], readOnly: [], readOnlyCaches: [] });
  });

  it("appends --store values to the configured targets, in order, once each", async () => {
    const config = await loadConfig({
      arg: tessera,
      env: {},
      stores: [
        "file:///srv/backups",
        "s3://other/x/",
        "relative/dir",
        "s3://backups/app",
        "https://cdn.example.com/db",
      ],
      cwd: "/work",
    });
    assert.deepEqual(config.targets, [
      { kind: "s3", bucket: "backups", prefix: "app/" },
      { kind: "directory", directory: "/srv/backups" },
      { kind: "s3", bucket: "other", prefix: "x/" },
      { kind: "directory", directory: "/work/relative/dir" },
    ]);
    assert.deepEqual(config.readOnly, [{ kind: "http", url: "https://cdn.example.com/db" }]);
  });

  it("builds a config from --store alone", async () => {
    const config = await loadConfig({ env: {}, stores: ["s3://b"] });
    assert.deepEqual(config, {
      targets: [{ kind: "s3", bucket: "b", prefix: "" }],
      readOnly: [],
      readOnlyCaches: [],
    });
  });

  it("resolves relative paths in a config against cwd", async () => {
    const config = await loadConfig({
      arg: '{"targets": ["./a", {"directory": "b"}], "cache": "c", "spool_dir": "../d"}',
      env: {},
      cwd: "/srv/app",
    });
    assert.deepEqual(config.targets, [
      { kind: "directory", directory: "/srv/app/a" },
      { kind: "directory", directory: "/srv/app/b" },
    ]);
    assert.equal(config.cache?.directory, "/srv/app/c");
    assert.equal(config.spoolDir, "/srv/d");
  });

  it("accepts a file that starts with a byte order mark", async () => {
    const path = join(dir, "bom.json");
    await writeFile(path, `\uFEFF${JSON.stringify(TESSERA)}`);
    assert.deepEqual(await loadConfig({ arg: path, env: {} }), TESSERA_NORMALISED);
  });
});

describe("loadConfig() source errors", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("config-errors");
  });
  after(() => removeDir(dir));

  it("names a missing file and where its path came from", async () => {
    const missing = join(dir, "nope.json");
    await configError(() => loadConfig({ arg: missing, env: {} }), [
      `file "${missing}" (from -c)`,
      "does not exist",
    ]);
    await configError(
      () => loadConfig({ env: { TESSERA_CONFIG: `@${missing}` } }),
      [`file "${missing}" (from TESSERA_CONFIG)`, "does not exist"],
    );
  });

  it("names a directory given as the config file", async () => {
    await configError(() => loadConfig({ arg: dir, env: {} }), [`file "${dir}"`, "is a directory"]);
  });

  it(
    "names an unreadable file",
    { skip: process.getuid?.() === 0 ? "root reads any file" : false },
    async () => {
      const path = join(dir, "secret.json");
      await writeFile(path, "{}");
      await chmod(path, 0o000);
      await configError(() => loadConfig({ arg: path, env: {} }), [`file "${path}"`, "permission"]);
    },
  );

  it("rejects an empty -c, a bare @ and an empty file", async () => {
    await configError(() => loadConfig({ arg: "", env: {} }), ["from -c", "the value is empty"]);
    await configError(() => loadConfig({ arg: "@", env: {} }), ["from -c", "the value is empty"]);
    const path = join(dir, "empty.json");
    await writeFile(path, " \n");
    await configError(() => loadConfig({ arg: path, env: {} }), [`file "${path}" (from -c)`, "it is empty"]);
  });

  it("reports invalid JSON with its line and column, from a file and inline", async () => {
    const path = join(dir, "broken.json");
    await writeFile(path, '{\n  "targets": ["s3://a/b"]\n  "chunk_size": 65536\n}\n');
    await configError(
      () => loadConfig({ arg: path, env: {} }),
      [`file "${path}" (from -c)`, "invalid JSON at line 3, column 3", "expected ',' or '}'"],
    );
    await configError(
      () => loadConfig({ arg: '{"targets": ["s3://a/b",]}', env: {} }),
      ["-c (inline JSON)", "line 1, column 25", "trailing comma"],
    );
    await configError(
      () => loadConfig({ env: { TESSERA_CONFIG: '{"targets": []} x' } }),
      ["TESSERA_CONFIG (inline JSON)", "line 1, column 17", "after the JSON value"],
    );
  });

  it("does not echo inline JSON that fails to parse, which may hold secrets", async () => {
    const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    await configError(
      () => loadConfig({ arg: `{"aws_secret_access_key": "${secret}" oops}`, env: {} }),
      ["-c (inline JSON)", "invalid JSON"],
      [secret],
    );
  });

  it("rejects a top level that is not an object", async () => {
    const path = join(dir, "list.json");
    await writeFile(path, '["s3://a/b"]');
    await configError(() => loadConfig({ arg: path, env: {} }), [
      `file "${path}"`,
      "the top level is an array",
    ]);
  });

  it("rejects a config that mixes both shapes", async () => {
    await configError(
      () => loadConfig({ arg: '{"targets": [], "replication_targets": []}', env: {} }),
      ["-c (inline JSON)", "mixes Tessera's keys (targets) with Verneuil's (replication_targets)"],
    );
  });

  it("names a bad --store value by its position", async () => {
    await configError(
      () => loadConfig({ env: {}, stores: ["s3://ok", "gopher://x/y"] }),
      ["the command line", '--store[1] is "gopher://x/y"', "expected a target"],
    );
    await configError(() => loadConfig({ env: {}, stores: ["memory:"] }), [
      "--store[0]",
      "outlives the process",
    ]);
  });

  it("reads a config inside a directory named like JSON only as a path", async () => {
    const nested = join(dir, "{not-inline}");
    await mkdir(nested);
    await writeFile(join(nested, "c.json"), JSON.stringify(TESSERA));
    assert.deepEqual(await loadConfig({ arg: join(nested, "c.json"), env: {} }), TESSERA_NORMALISED);
  });
});
