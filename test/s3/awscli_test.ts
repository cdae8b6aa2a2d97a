import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { S3Client } from "../../src/s3/client.ts";
import { awsCli, type AwsCliResult } from "../_helpers/awscli.ts";
import { type FaultProxy, type ProxyLogEntry, startFaultProxy } from "../_helpers/fault_proxy.ts";
import { type S3TestServer, startS3Server } from "../_helpers/s3_server.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

const KIB = 1024;
const MIB = 1024 * KIB;

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

function assertSucceeded(result: AwsCliResult, what: string): void {
  assert.equal(result.code, 0, `${what} exited with ${result.code}: ${result.stderr}`);
}

/** Compares big arrays without printing megabytes when they differ. */
function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const at = actual.findIndex((byte, i) => byte !== expected[i]);
  assert.equal(at, -1, `${what}: first difference at byte ${at}`);
}

interface ListedObject {
  Key: string;
  Size: number;
  ETag: string;
}

describe("interoperability with Debian's awscli", () => {
  let server: S3TestServer;
  let proxy: FaultProxy;
  let s3: S3Client;
  let dir: string;

  before(async () => {
    server = await startS3Server();
    proxy = await startFaultProxy(server.endpoint);
    dir = await makeTempDir("awscli");
    s3 = new S3Client({
      bucket: server.bucket,
      endpoint: server.endpoint,
      region: server.region,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    });
  });

  after(async () => {
    await proxy?.stop();
    await server?.stop();
    if (dir !== undefined) await removeDir(dir);
  });

  describe("objects written by S3Client", () => {
    const objects = new Map<string, Uint8Array>([
      ["ours/empty.bin", new Uint8Array(0)],
      ["ours/nested/deeper/one-kib.bin", randomBytes(KIB)],
      ["ours/with space/three mib.bin", randomBytes(3 * MIB)],
      ["ours/plus+and-é.txt", new TextEncoder().encode("plus and accent\n")],
    ]);
    const etags = new Map<string, string>();

    before(async () => {
      for (const [key, bytes] of objects) etags.set(key, (await s3.putObject(key, bytes)).etag);
    });

    it("aws s3api list-objects-v2 lists every key with its size and ETag", async () => {
      const result = await awsCli(server, [
        "s3api",
        "list-objects-v2",
        "--bucket",
        server.bucket,
        "--prefix",
        "ours/",
        "--output",
        "json",
      ]);
      assertSucceeded(result, "aws s3api list-objects-v2");
      const listing = JSON.parse(new TextDecoder().decode(result.stdout)) as { Contents?: ListedObject[] };
      const listed = (listing.Contents ?? []).map((o) => [o.Key, o.Size, o.ETag]).sort();
      const expected = [...objects].map(([key, bytes]) => [key, bytes.length, etags.get(key)]).sort();
      assert.deepEqual(listed, expected);
    });

    it("aws s3 cp s3://bucket/key - downloads each object byte for byte", async () => {
      await Promise.all([...objects].map(async ([key, bytes]) => {
        const result = await awsCli(server, ["s3", "cp", `s3://${server.bucket}/${key}`, "-"]);
        assertSucceeded(result, `aws s3 cp of "${key}"`);
        assertSameBytes(result.stdout, bytes, `"${key}" downloaded by awscli`);
      }));
    });
  });

  describe("objects written by awscli", () => {
    const small = randomBytes(KIB);
    const large = randomBytes(20 * MIB);
    let uploadLog: ProxyLogEntry[];

    before(async () => {
      await writeFile(join(dir, "small.bin"), small);
      await writeFile(join(dir, "large.bin"), large);
      // Through the proxy, with no fault rules, only for its log of the requests awscli makes.
      const viaProxy = { ...server, endpoint: proxy.endpoint };
      await proxy.resetLog();
      const uploads = await Promise.all([
        awsCli(viaProxy, ["s3", "cp", join(dir, "small.bin"), `s3://${server.bucket}/theirs/small file.bin`]),
        awsCli(viaProxy, ["s3", "cp", join(dir, "large.bin"), `s3://${server.bucket}/theirs/large.bin`]),
      ]);
      for (const upload of uploads) assertSucceeded(upload, "aws s3 cp upload");
      uploadLog = await proxy.log();
    });

    it("getObject() reads a 1 KiB object uploaded by aws s3 cp byte for byte", async () => {
      const got = await s3.getObject("theirs/small file.bin");
      assert.equal(got.status, "ok");
      assertSameBytes(got.body, small, "small object");
      assert.equal(got.size, KIB);
      assert.match(got.etag, /^"[0-9a-f]{32}"$/);
    });

    it("aws s3 cp uploads 20 MiB in three parts, and getObject() reads the result byte for byte", async () => {
      // S3 would give the object an ETag ending in "-3"; s3rver gives the MD5 of the whole object, so the
      // proxy's log of awscli's requests is what shows the upload was multipart (8 MiB parts make three).
      const largeRequests = uploadLog.filter((entry) => entry.path.includes("/theirs/large.bin"));
      assert.equal(
        largeRequests.filter((e) => e.method === "POST" && /[?&]uploads(?:=|&|$)/.test(e.path)).length,
        1,
      );
      const parts = largeRequests.filter((e) => e.method === "PUT").map((e) =>
        e.path.match(/[?&]partNumber=(\d+)/)?.[1]
      );
      assert.deepEqual(parts.sort(), ["1", "2", "3"]);
      assert.equal(
        largeRequests.filter((e) => e.method === "POST" && /[?&]uploadId=/.test(e.path)).length,
        1,
      );
      const smallRequests = uploadLog.filter((entry) => entry.path.includes("/theirs/small"));
      assert.deepEqual(smallRequests.map((e) => [e.method, /partNumber|uploads/.test(e.path)]), [[
        "PUT",
        false,
      ]]);
      const info = await s3.headObject("theirs/large.bin");
      assert.equal(info.status, "ok");
      assert.equal(info.size, large.length);
      const got = await s3.getObject("theirs/large.bin");
      assert.equal(got.status, "ok");
      assert.equal(got.etag, info.etag);
      assertSameBytes(got.body, large, "large object");
    });

    it("getObject() reads ranges across the part boundaries of a multipart object", async () => {
      for (const offset of [8 * MIB - 10, 16 * MIB - 5, 20 * MIB - 20]) {
        const got = await s3.getObject("theirs/large.bin", { range: { offset, length: 20 } });
        assert.equal(got.status, "ok");
        assert.equal(got.size, large.length);
        assert.deepEqual(got.body, large.subarray(offset, offset + 20), `range at ${offset}`);
      }
    });

    it("listObjectsV2() lists what awscli uploaded with the right sizes", async () => {
      const listed: [string, number][] = [];
      for await (const entry of s3.listObjectsV2({ prefix: "theirs/" })) {
        if (entry.type === "object") listed.push([entry.key, entry.size]);
      }
      assert.deepEqual(listed, [["theirs/large.bin", 20 * MIB], ["theirs/small file.bin", KIB]]);
    });
  });
});
