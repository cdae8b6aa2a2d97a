/**
 * The server config's database names and secrets: a name `createApp` would refuse and a token no
 * `Authorization: Bearer` header can carry are config errors naming the file and the key, never the secret.
 */

import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { TesseraError } from "../../src/errors.ts";
import { isDatabaseName } from "../../src/server/app.ts";
import { tokenProblem } from "../../src/server/auth.ts";
import { loadServerConfig, parseServerConfig, readSecret } from "../../src/server/config.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

const STORE = "file:///backups";
const RULE = /a name is 1-128 letters, digits, "_", "-" or "\.", and none of "healthz", "metrics", .*"\.\."/;
const SPACED = /contains whitespace, a control character or a character outside ASCII.*Authorization: Bearer/;

function refused(raw: unknown, message: RegExp, env: Record<string, string | undefined> = {}): string {
  let text = "";
  assert.throws(() => parseServerConfig(raw, 'file "server.json"', env), (error: unknown) => {
    assert.ok(error instanceof TesseraError);
    assert.equal(error.code, "CONFIG_INVALID");
    assert.match(error.message, /^Cannot load the server config \(file "server\.json"\): /);
    assert.match(error.message, message);
    text = error.message;
    return true;
  });
  return text;
}

describe("parseServerConfig()", () => {
  it("refuses a database name createApp would refuse, naming the key and the rule", () => {
    for (const name of ["bad/name", "metrics", "v2", "..", ".", "", "a b", "x".repeat(129), "é"]) {
      const message = refused(
        { store: STORE, databases: { [name]: { public: true } } },
        new RegExp(`databases has the key ${JSON.stringify(name).replace(/[.]/g, "\\.")}, which is not a`),
      );
      assert.match(message, RULE);
      assert.match(message, /use a valid key with "source"/);
    }
    for (const name of ["app", "a.b-c_D9", "...", "x".repeat(128), "metrics2"]) {
      const config = parseServerConfig({ store: STORE, databases: { [name]: { public: true } } }, "test");
      assert.deepEqual([...config.databases.keys()], [name]);
    }
  });

  it("accepts exactly the names isDatabaseName() accepts, the rule createApp serves by", () => {
    const name = fc.oneof(
      fc.string({ unit: fc.constantFrom("a", "Z", "0", "_", "-", ".", "/", " ", "%", "é"), maxLength: 6 }),
      fc.constantFrom(
        "healthz",
        "metrics",
        "v1",
        "v2",
        "v3",
        "v4",
        ".",
        "..",
        "x".repeat(128),
        "x".repeat(129),
      ),
    );
    fc.assert(
      fc.property(name, (n) => {
        let accepted = true;
        try {
          parseServerConfig({ store: STORE, databases: { [n]: { public: true } } }, "test");
        } catch (error) {
          assert.match((error as Error).message, /which is not a database name/);
          accepted = false;
        }
        assert.equal(accepted, isDatabaseName(n), n);
        assert.equal(
          accepted,
          /^[A-Za-z0-9_.-]{1,128}$/.test(n) && !/^(healthz|metrics|v[123]|\.\.?)$/.test(n),
        );
      }),
    );
  });

  it("refuses a token an Authorization header cannot carry, naming the key, never the token", () => {
    const cases: [string, string][] = [
      ["secret words", "a space"],
      ["secret\twords", "a tab"],
      ["secret\nwords", "a newline"],
      ["secret\u0000words", "NUL"],
      ["secret\u007fwords", "DEL"],
      ["secret\u00a0words", "a no-break space"],
      ["secret\u20acwords", "a character past Latin-1"],
      ["h\u00e9llo", "a Latin-1 letter (curl sends it as UTF-8, fetch as Latin-1)"],
      [" secret", "a leading space"],
    ];
    for (const [token, what] of cases) {
      const message = refused(
        { store: STORE, databases: { app: { tokens: ["good-token", token] } } },
        /databases\.app\.tokens\[1\] contains whitespace/,
      );
      assert.match(message, SPACED, what);
      assert.doesNotMatch(message, /secret/, what);
    }
    refused({ store: STORE, databases: { app: { tokens: [""] } } }, /databases\.app\.tokens\[0\] is empty/);
    refused(
      { store: STORE, databases: { app: { tokens: [7] } } },
      /databases\.app\.tokens\[0\] is not a string/,
    );
    const fromEnv = refused(
      { store: STORE, databases: { app: { tokens: ["env:APP_TOKEN"] } } },
      /databases\.app\.tokens\[0\] names the environment variable APP_TOKEN, whose value contains whitespace/,
      { APP_TOKEN: "secret words" },
    );
    assert.doesNotMatch(fromEnv, /secret/);
    refused(
      { store: STORE, databases: { app: { tokens: ["env:APP_TOKEN"] } } },
      /APP_TOKEN, which is not set or empty/,
      { APP_TOKEN: "" },
    );
    const metrics = refused(
      { store: STORE, databases: { app: { public: true } }, metricsToken: "secret metrics" },
      /metricsToken contains whitespace/,
    );
    assert.doesNotMatch(metrics, /secret/);
    refused(
      { store: STORE, databases: { app: { public: true } }, metricsToken: "" },
      /metricsToken is empty/,
    );
  });

  it("never shows a refused token, whatever it holds", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", minLength: 1, maxLength: 20 }), (tail) => {
        const token = `SECRET${tail}`;
        try {
          const config = parseServerConfig({ store: STORE, databases: { app: { tokens: [token] } } }, "test");
          assert.deepEqual(config.databases.get("app")!.tokens, [token]);
          assert.match(token, /^[\x21-\x7e\xa1-\xff]+$/);
        } catch (error) {
          assert.ok(error instanceof TesseraError);
          assert.ok(!error.message.includes("SECRET"), error.message);
          assert.match(error.message, SPACED);
        }
      }),
    );
  });

  it("takes publicMetrics true or false, and not with metricsToken", () => {
    const base = { store: STORE, databases: { app: { tokens: ["t"] } } };
    assert.equal(parseServerConfig(base, "test").publicMetrics, false);
    assert.equal(parseServerConfig({ ...base, publicMetrics: true }, "test").publicMetrics, true);
    refused({ ...base, publicMetrics: "yes" }, /publicMetrics is not true or false/);
    refused(
      { ...base, publicMetrics: true, metricsToken: "m" },
      /publicMetrics is true and metricsToken is set: give one, not both/,
    );
  });
});

describe("loadServerConfig()", () => {
  it("names the config file of a bad database name", async () => {
    const dir = await makeTempDir("server-config");
    try {
      const path = join(dir, "server.json");
      await writeFile(path, JSON.stringify({ store: STORE, databases: { "bad/name": { public: true } } }));
      await assert.rejects(loadServerConfig(path, {}), (error: unknown) => {
        assert.ok(error instanceof TesseraError);
        assert.equal(error.code, "CONFIG_INVALID");
        assert.ok(
          error.message.startsWith(`Cannot load the server config (file "${path}"): `),
          error.message,
        );
        assert.match(error.message, /databases has the key "bad\/name", which is not a database name/);
        return true;
      });
    } finally {
      await removeDir(dir);
    }
  });
});

describe("readSecret() and tokenProblem()", () => {
  it("read a token or env:NAME, and say what is wrong without the secret", () => {
    assert.deepEqual(readSecret("s3cret-~!", {}), { secret: "s3cret-~!" });
    assert.deepEqual(readSecret("env:T", { T: "from-env" }), { secret: "from-env" });
    assert.deepEqual(readSecret("env:T", {}), {
      problem: "names the environment variable T, which is not set or empty",
    });
    assert.equal(tokenProblem("s3cret-~!"), undefined);
    assert.match(
      tokenProblem("héllo")!,
      /outside ASCII/,
      "Latin-1 reaches the server differently per client",
    );
    assert.equal(tokenProblem(""), "is empty");
    assert.match(tokenProblem("a b")!, SPACED);
  });
});
