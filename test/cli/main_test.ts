import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../../src/cli/main.ts";
import type { CliIo } from "../../src/cli/_io.ts";
import { runScript } from "../_helpers/run.ts";
import { startS3Server } from "../_helpers/s3_server.ts";
import { awsCli } from "../_helpers/awscli.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { pattern } from "../_helpers/store.ts";

function capture(env: Record<string, string> = {}) {
  const out: Uint8Array[] = [];
  let err = "";
  const io: CliIo = {
    env,
    stdout: (d) => out.push(typeof d === "string" ? new TextEncoder().encode(d) : d),
    stderr: (t) => (err += t),
    isTty: false,
  };
  return {
    io,
    stdout: () => new TextDecoder().decode(Buffer.concat(out)),
    bytes: () => new Uint8Array(Buffer.concat(out)),
    stderr: () => err,
  };
}

describe("tessera CLI", () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir("cli");
  });
  after(() => removeDir(dir));

  it("prints help and the version, with exit code 0", async () => {
    for (const args of [["--help"], ["help", "store"], ["store", "--help"]]) {
      const c = capture();
      assert.equal(await run(args, c.io), 0);
      assert.match(c.stdout(), /Usage: tessera/);
      assert.match(c.stdout(), /Exit codes: 0 done, 1 failed, 2 bad usage, 3 not found/);
    }
    const v = capture();
    assert.equal(await run(["--version", "--json"], v.io), 0);
    assert.deepEqual(JSON.parse(v.stdout()), { version: "0.1.0" });
  });

  it("exits 2 with a hint on unknown commands, actions and options", async () => {
    for (
      const args of [[], ["frobnicate"], ["store", "frob", dir], ["store", "ls", dir, "--bogus"], [
        "store",
        "get",
        dir,
      ]]
    ) {
      const c = capture();
      assert.equal(await run(args, c.io), 2, args.join(" "));
      if (args.length) assert.match(c.stderr(), /^tessera: .*\nRun "tessera --help" for usage\.\n$/s);
    }
  });

  it("puts, lists, heads, gets and removes objects in a directory store", async () => {
    const store = join(dir, "store");
    const file = join(dir, "payload.bin");
    const payload = pattern(70_000, 9);
    await writeFile(file, payload);
    assert.equal(await run(["store", "put", store, "x/y.bin", file], capture().io), 0);

    const ls = capture();
    assert.equal(await run(["store", "ls", store, "--json"], ls.io), 0);
    const items = ls.stdout().trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(items.length, 1);
    assert.equal(items[0].key, "x/y.bin");
    assert.equal(items[0].size, payload.length);

    const folders = capture();
    assert.equal(await run(["store", "ls", `file://${store}`, "--delimiter"], folders.io), 0);
    assert.match(folders.stdout(), /PRE {2}x\//);

    const get = capture();
    assert.equal(await run(["store", "get", store, "x/y.bin"], get.io), 0);
    assert.deepEqual(get.bytes(), payload);

    const out = join(dir, "out.bin");
    assert.equal(await run(["store", "get", store, "x/y.bin", "-o", out], capture().io), 0);
    assert.deepEqual(new Uint8Array(await readFile(out)), payload);

    assert.equal(await run(["store", "rm", store, "x/y.bin"], capture().io), 0);
    const missing = capture();
    assert.equal(await run(["store", "head", store, "x/y.bin"], missing.io), 3);
    assert.match(missing.stderr(), /Cannot head "x\/y\.bin": no such object in file:\/\/.*\[NOT_FOUND\]/);
  });

  it("reports bad keys and bad store targets as typed errors with exit code 1", async () => {
    await mkdir(join(dir, "s2"), { recursive: true });
    const bad = capture();
    assert.equal(await run(["store", "head", join(dir, "s2"), "../escape", "--json"], bad.io), 1);
    const body = JSON.parse(bad.stdout());
    assert.equal(body.ok, false);
    assert.equal(body.error.code, "INVALID_KEY");
    assert.match(body.error.message, /Invalid key "\.\.\/escape"/);
    const scheme = capture();
    assert.equal(await run(["store", "ls", "gopher://x"], scheme.io), 1);
    assert.match(scheme.stderr(), /unknown scheme "gopher:".*\[CONFIG_INVALID\]/);
  });

  it("runs as a program and exits with the documented code", async () => {
    const version = await runScript("src/cli/main.ts", ["--version"]);
    assert.equal(version.code, 0);
    assert.equal(version.stdout, "tessera 0.1.0\n");
    const missing = await runScript("src/cli/main.ts", ["store", "get", dir, "no/such/key"]);
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /no such object/);
  });

  it("reads S3 settings from AWS_* variables: what it puts, awscli downloads byte for byte", async () => {
    const server = await startS3Server();
    try {
      const env = {
        AWS_ACCESS_KEY_ID: server.accessKeyId,
        AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
        AWS_REGION: server.region,
        AWS_ENDPOINT_URL: server.endpoint,
      };
      const file = join(dir, "s3-payload.bin");
      const payload = pattern(100_000, 11);
      await writeFile(file, payload);
      const target = `s3://${server.bucket}/cli-prefix`;
      const put = capture(env);
      assert.equal(await run(["store", "put", target, "a/b.bin", file, "--json"], put.io), 0, put.stderr());
      assert.equal(JSON.parse(put.stdout()).key, "a/b.bin");
      const fetched = await awsCli(server, ["s3", "cp", `s3://${server.bucket}/cli-prefix/a/b.bin`, "-"]);
      assert.equal(fetched.code, 0, fetched.stderr);
      assert.deepEqual(fetched.stdout, payload);
      const ls = capture(env);
      assert.equal(await run(["store", "ls", target], ls.io), 0);
      assert.equal(ls.stdout(), `${"100000".padStart(12)}  a/b.bin\n`);
    } finally {
      await server.stop();
    }
  });
});
