/**
 * Requests signed in their query string (`signing: "query"`, presigned requests): against s3rver, what goes
 * on the wire (no `Authorization`, no `x-amz-*` request header), and each signature checked against botocore's
 * presigner (Debian's awscli) for the same request at the same time.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { S3Client } from "../../src/s3/client.ts";
import { S3Store } from "../../src/store/s3.ts";
import { pattern } from "../_helpers/pattern.ts";
import { ROOT } from "../_helpers/run.ts";
import { type S3TestServer, startS3Server } from "../_helpers/s3_server.ts";

// Debian's python, where Debian's awscli (and the botocore it ships) lives.
const PYTHON = "/usr/bin/python3";

interface Seen {
  method: string;
  url: URL;
  headers: Headers;
}

/** botocore's presigned URL for the request `seen` made, at the time it was signed. */
function botocoreUrl(seen: Seen, s3: S3TestServer, sessionToken?: string): Promise<URL> {
  const base = new URL(seen.url);
  for (const name of [...base.searchParams.keys()]) {
    if (name.startsWith("X-Amz-")) base.searchParams.delete(name);
  }
  const signed = (seen.url.searchParams.get("X-Amz-SignedHeaders") ?? "").split(";");
  const headers = Object.fromEntries([...seen.headers].filter(([name]) => signed.includes(name)));
  const args = {
    method: seen.method,
    url: base.href,
    headers,
    date: seen.url.searchParams.get("X-Amz-Date"),
    region: s3.region,
    expires: Number(seen.url.searchParams.get("X-Amz-Expires")),
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    ...(sessionToken ? { sessionToken } : {}),
  };
  return new Promise((resolve, reject) => {
    execFile(PYTHON, [`${ROOT}test/_helpers/presign.py`, JSON.stringify(args)], (error, stdout, stderr) => {
      if (error) reject(new Error(`presign.py failed: ${stderr || error.message}`));
      else resolve(new URL(stdout.trim()));
    });
  });
}

describe("S3 requests signed in the query string", () => {
  let s3: S3TestServer;
  const object = pattern(100_000, 5);

  before(async () => {
    s3 = await startS3Server();
    const writer = new S3Client({
      bucket: s3.bucket,
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    await writer.putObject("presign/data.bin", object);
  });

  after(async () => {
    await s3?.stop();
  });

  const client = (seen: Seen[], extra: Partial<ConstructorParameters<typeof S3Client>[0]> = {}) =>
    new S3Client({
      bucket: s3.bucket,
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      signing: "query",
      fetch: (input, init) => {
        seen.push({
          method: init?.method ?? "GET",
          url: new URL(String(input)),
          headers: new Headers(init?.headers),
        });
        return fetch(input, init);
      },
      ...extra,
    });

  it("reads whole, ranged, conditional and missing objects with no Authorization or x-amz-* header", async () => {
    const seen: Seen[] = [];
    const store = new S3Store(client(seen), { prefix: "presign/" });
    const whole = await store.get("data.bin");
    assert.equal(whole.status, "ok");
    assert.deepEqual(whole.status === "ok" && whole.body, object);
    const part = await store.get("data.bin", { range: { offset: 1000, length: 500 } });
    assert.deepEqual(part.status === "ok" && part.body, object.subarray(1000, 1500));
    const head = await store.head("data.bin");
    assert.equal(head.status === "ok" && head.size, object.length);
    const etag = whole.status === "ok" ? whole.etag : "";
    assert.deepEqual(await store.get("data.bin", { ifNoneMatch: etag }), { status: "not_modified", etag });
    assert.deepEqual(await store.get("missing.bin"), { status: "not_found" });

    assert.equal(seen.length, 5);
    for (const request of seen) {
      assert.equal(request.headers.get("authorization"), null);
      assert.deepEqual([...request.headers.keys()].filter((name) => name.startsWith("x-amz-")), []);
      const query = request.url.searchParams;
      assert.equal(query.get("X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
      assert.equal(query.get("X-Amz-Expires"), "300");
      assert.match(
        query.get("X-Amz-Credential") ?? "",
        new RegExp(`^${s3.accessKeyId}/\\d{8}/us-east-1/s3/aws4_request$`),
      );
      assert.match(query.get("X-Amz-Signature") ?? "", /^[0-9a-f]{64}$/);
    }
  });

  it("signs exactly as botocore's presigner does, headers and session token included", async () => {
    if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: apt-get install awscli`);
    const seen: Seen[] = [];
    const store = new S3Store(client(seen, { presignExpiresSeconds: 900 }), { prefix: "presign/" });
    await store.get("data.bin");
    const whole = await store.get("data.bin", { range: { offset: 10, length: 20 } });
    await store.get("data.bin", { ifNoneMatch: whole.status === "ok" ? whole.etag : "" });
    await store.head("data.bin");
    const withToken: Seen[] = [];
    await new S3Store(
      client(withToken, {
        credentials: {
          accessKeyId: s3.accessKeyId,
          secretAccessKey: s3.secretAccessKey,
          sessionToken: "session/token+with=odd chars",
        },
      }),
      { prefix: "presign/" },
    ).get("data.bin");
    for (
      const [request, token] of [
        ...seen.map((r) => [r, undefined] as const),
        [withToken[0]!, "session/token+with=odd chars"] as const,
      ]
    ) {
      const expected = await botocoreUrl(request, s3, token);
      assert.equal(
        request.url.searchParams.get("X-Amz-Signature"),
        expected.searchParams.get("X-Amz-Signature"),
        `${request.method} ${request.url.pathname} signed with ${
          request.url.searchParams.get("X-Amz-SignedHeaders")
        }`,
      );
      assert.equal(request.url.searchParams.get("X-Amz-Expires"), token ? "300" : "900");
    }
    // A changed signature would not match: the check can fail.
    const forged = new URL(seen[0]!.url);
    forged.searchParams.set("X-Amz-Date", "20200101T000000Z");
    const other = await botocoreUrl({ ...seen[0]!, url: forged }, s3);
    assert.notEqual(
      other.searchParams.get("X-Amz-Signature"),
      seen[0]!.url.searchParams.get("X-Amz-Signature"),
    );
  });

  it("keeps the signature out of errors, and refuses bad options", async () => {
    const closed = new S3Client({
      bucket: s3.bucket,
      endpoint: "http://127.0.0.1:9",
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: "do-not-show-this-secret" },
      signing: "query",
      maxAttempts: 1,
    });
    const error = await closed.getObject("presign/data.bin").then(() => undefined, (e: Error) => e);
    assert.ok(error);
    assert.doesNotMatch(
      `${error.message} ${error.stack}`,
      /X-Amz-Signature|X-Amz-Credential|do-not-show-this-secret/,
    );
    assert.throws(
      () => new S3Client({ bucket: "b", signing: "url" as "query" }),
      /signing "url" is not "header" or "query"/,
    );
    assert.throws(
      () => new S3Client({ bucket: "b", signing: "query", presignExpiresSeconds: 604801 }),
      /presignExpiresSeconds 604801 is not 1 to 604800/,
    );
  });
});
