import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { HttpStore } from "../../src/store/http.ts";
import { LocalStore } from "../../src/store/local.ts";
import { MemoryStore } from "../../src/store/memory.ts";
import { openStore } from "../../src/store/open.ts";
import { S3Store } from "../../src/store/s3.ts";

describe("openStore()", () => {
  it("opens S3 targets with the bucket, prefix and AWS_* settings", () => {
    const store = openStore("s3://backups/team/db", {
      env: {
        AWS_ACCESS_KEY_ID: "id",
        AWS_SECRET_ACCESS_KEY: "secret",
        AWS_ENDPOINT_URL: "http://127.0.0.1:9000",
      },
    });
    assert.ok(store instanceof S3Store);
    assert.equal(store.prefix, "team/db/");
    assert.equal(store.client.bucket, "backups");
    assert.equal(store.client.url, "http://127.0.0.1:9000/backups");
    assert.equal(store.description, "s3://backups/team/db/ at http://127.0.0.1:9000");
    const bare = openStore("s3://backups", {});
    assert.ok(bare instanceof S3Store);
    assert.equal(bare.prefix, "");
    assert.equal(bare.client.url, "https://backups.s3.us-east-1.amazonaws.com");
  });

  it("opens directories from file URLs and from plain paths", () => {
    const a = openStore("file:///var/backups/tessera%20db");
    assert.ok(a instanceof LocalStore);
    assert.equal(a.root, "/var/backups/tessera db");
    const b = openStore("./backups");
    assert.ok(b instanceof LocalStore);
    assert.equal(b.root, resolve("./backups"));
  });

  it("opens HTTP hosts read-only and memory stores", () => {
    const http = openStore("https://cdn.example.com/db/");
    assert.ok(http instanceof HttpStore);
    assert.equal(http.url, "https://cdn.example.com/db");
    assert.equal(http.capabilities.write, false);
    assert.ok(openStore("memory:") instanceof MemoryStore);
  });

  it("rejects bad targets with CONFIG_INVALID and a message naming them", () => {
    const cases: [string, RegExp][] = [
      ["", /the target is empty/],
      ["gopher://x/y", /unknown scheme "gopher:"/],
      ["s3://", /expected s3:\/\/bucket/],
      ["file://server/share", /not host "server"/],
      ["s3://bad bucket/x", /Cannot open store "s3:\/\/bad bucket\/x": Cannot use bucket "bad bucket"/],
    ];
    for (const [target, message] of cases) {
      assert.throws(() => openStore(target), { code: "CONFIG_INVALID", message }, target);
    }
    assert.throws(
      () => openStore("s3://b", { env: { AWS_ACCESS_KEY_ID: "only-the-id" } }),
      { code: "CONFIG_INVALID", message: /AWS_SECRET_ACCESS_KEY is not/ },
    );
  });
});
