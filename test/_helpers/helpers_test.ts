import assert from "node:assert/strict";
import { access, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { awsCli } from "./awscli.ts";
import { type FaultProxy, startFaultProxy } from "./fault_proxy.ts";
import { type S3TestServer, startS3Server } from "./s3_server.ts";
import { startStaticServer, type StaticServer } from "./static_server.ts";
import { makeTempDir, removeDir } from "./temp.ts";

const BODY = new TextEncoder().encode("0123456789".repeat(1000));

async function bytesOf(response: Response): Promise<Uint8Array> {
  return new Uint8Array(await response.arrayBuffer());
}

describe("test helpers", () => {
  let s3: S3TestServer;
  let proxy: FaultProxy;
  let site: string;
  let web: StaticServer;
  let objectUrl: string;
  let proxiedUrl: string;

  before(async () => {
    s3 = await startS3Server();
    proxy = await startFaultProxy(s3.endpoint);
    objectUrl = `${s3.endpoint}/${s3.bucket}/dir/object-1.bin`;
    proxiedUrl = `${proxy.endpoint}/${s3.bucket}/dir/object-1.bin`;
    const put = await fetch(objectUrl, { method: "PUT", body: BODY });
    await put.body?.cancel();
    assert.equal(put.status, 200);
    site = await makeTempDir("site");
    await writeFile(join(site, "data.bin"), BODY);
    web = await startStaticServer(site);
  });

  after(async () => {
    await web?.stop();
    await proxy?.stop();
    await s3?.stop();
    if (site !== undefined) await removeDir(site);
  });

  it("makeTempDir() creates an empty directory under the temporary directory that removeDir() removes", async () => {
    const dir = await makeTempDir("probe");
    assert.ok(dir.startsWith(join(tmpdir(), "tessera-probe-")));
    assert.ok((await stat(dir)).isDirectory());
    await removeDir(dir);
    await assert.rejects(access(dir), { code: "ENOENT" });
    await removeDir(dir);
  });

  it("startS3Server() serves a PUT object back to a GET", async () => {
    const response = await fetch(objectUrl);
    assert.equal(response.status, 200);
    assert.deepEqual(await bytesOf(response), BODY);
  });

  it("startS3Server() creates every bucket, and stop() kills it and removes its directory", async () => {
    const other = await startS3Server({ buckets: ["first-bucket", "second-bucket"] });
    assert.equal(other.bucket, "first-bucket");
    for (const bucket of ["first-bucket", "second-bucket"]) {
      const response = await fetch(`${other.endpoint}/${bucket}?list-type=2`);
      await response.body?.cancel();
      assert.equal(response.status, 200);
    }
    await other.stop();
    await assert.rejects(fetch(`${other.endpoint}/first-bucket`));
    await assert.rejects(access(other.directory), { code: "ENOENT" });
    await other.stop();
  });

  it("the fault proxy forwards requests unchanged when no rule matches, and logs them", async () => {
    await proxy.clear();
    await proxy.resetLog();
    const response = await fetch(`${proxiedUrl}?x-id=GetObject`);
    assert.equal(response.status, 200);
    assert.deepEqual(await bytesOf(response), BODY);
    const head = await fetch(proxiedUrl, { method: "HEAD" });
    assert.equal(head.headers.get("content-length"), String(BODY.length));
    assert.deepEqual(await proxy.log(), [
      { method: "GET", path: `/${s3.bucket}/dir/object-1.bin?x-id=GetObject`, fault: null, status: 200 },
      { method: "HEAD", path: `/${s3.bucket}/dir/object-1.bin`, fault: null, status: 200 },
    ]);
  });

  it("a status fault answers with an S3 XML error, only as many times as asked", async () => {
    await proxy.setRules([{
      method: "GET",
      path: "/\\/object-[0-9]+\\.bin$/",
      fault: "status",
      code: "SlowDown",
      times: 1,
    }]);
    await proxy.resetLog();
    const failed = await fetch(proxiedUrl);
    assert.equal(failed.status, 503);
    assert.match(
      await failed.text(),
      /<Error><Code>SlowDown<\/Code><Message>.+<\/Message><RequestId>.+<\/RequestId>/,
    );
    const retried = await fetch(proxiedUrl);
    assert.equal(retried.status, 200);
    assert.deepEqual(await bytesOf(retried), BODY);
    assert.deepEqual((await proxy.log()).map((entry) => entry.fault), ["status", null]);
  });

  it("a reset fault makes fetch reject", async () => {
    await proxy.setRules([{ fault: "reset" }]);
    await assert.rejects(fetch(proxiedUrl), TypeError);
  });

  it("a truncate fault sends the full Content-Length but only half the body", async () => {
    await proxy.setRules([{ fault: "truncate" }]);
    const response = await fetch(proxiedUrl);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), String(BODY.length));
    const outcome = await response.arrayBuffer().then((bytes) => bytes.byteLength, (error: Error) => error);
    if (typeof outcome === "number") assert.ok(outcome < BODY.length, `read ${outcome} bytes`);
    else assert.ok(outcome instanceof Error);
  });

  it("a stall fault never answers, so fetch times out", async () => {
    await proxy.setRules([{ fault: "stall" }]);
    await assert.rejects(fetch(proxiedUrl, { signal: AbortSignal.timeout(300) }), { name: "TimeoutError" });
  });

  it("a stall-body fault sends the headers, then stalls reading the body", async () => {
    await proxy.setRules([{ fault: "stall-body" }]);
    const response = await fetch(proxiedUrl, { signal: AbortSignal.timeout(300) });
    assert.equal(response.status, 200);
    await assert.rejects(response.arrayBuffer(), { name: "TimeoutError" });
  });

  it("a delay fault forwards the request after the delay", async () => {
    await proxy.setRules([{ fault: "delay", delayMs: 200 }]);
    const started = performance.now();
    const response = await fetch(proxiedUrl);
    assert.deepEqual(await bytesOf(response), BODY);
    assert.ok(performance.now() - started >= 190);
  });

  it("startFaultProxy() with latencyMs delays every request, faults included, and logs them on arrival", async () => {
    const slow = await startFaultProxy(s3.endpoint, { latencyMs: 150 });
    try {
      await slow.setRules([{ method: "HEAD", fault: "status", status: 503, times: 1 }]);
      const url = `${slow.endpoint}/${s3.bucket}/dir/object-1.bin`;
      let started = performance.now();
      const failed = await fetch(url, { method: "HEAD" });
      assert.equal(failed.status, 503);
      assert.ok(performance.now() - started >= 140);
      started = performance.now();
      const response = await fetch(url);
      assert.deepEqual(await bytesOf(response), BODY);
      assert.ok(performance.now() - started >= 140);
      assert.deepEqual((await slow.log()).map((entry) => [entry.method, entry.fault, entry.status]), [
        ["HEAD", "status", null],
        ["GET", null, 200],
      ]);
    } finally {
      await slow.stop();
    }
    await assert.rejects(startFaultProxy(s3.endpoint, { latencyMs: -1 }), RangeError);
  });

  it("setRules() rejects an invalid rule with a TypeError", async () => {
    await assert.rejects(proxy.setRules([{ fault: "delay" }]), TypeError);
    await assert.rejects(proxy.setRules([{ fault: "explode" as "stall" }]), /unknown fault "explode"/);
  });

  it("awsCli() uploads, lists and downloads through Debian's awscli", async () => {
    const put = await awsCli(s3, ["s3", "cp", "-", `s3://${s3.bucket}/cli/hello.txt`], { input: BODY });
    assert.equal(put.code, 0, put.stderr);
    const list = await awsCli(s3, ["s3", "ls", `s3://${s3.bucket}/`, "--recursive"]);
    assert.equal(list.code, 0, list.stderr);
    const listing = new TextDecoder().decode(list.stdout);
    assert.match(listing, /cli\/hello\.txt/);
    assert.match(listing, /dir\/object-1\.bin/);
    const get = await awsCli(s3, ["s3", "cp", `s3://${s3.bucket}/cli/hello.txt`, "-"]);
    assert.deepEqual(get.stdout, BODY);
  });

  it("startStaticServer() serves ranges, ETags with 304 and 404 for missing files", async () => {
    const ranged = await fetch(`${web.url}/data.bin`, { headers: { range: "bytes=10-19" } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get("content-range"), `bytes 10-19/${BODY.length}`);
    assert.deepEqual(await bytesOf(ranged), BODY.subarray(10, 20));
    const etag = ranged.headers.get("etag");
    assert.ok(etag !== null);
    const unchanged = await fetch(`${web.url}/data.bin`, { headers: { "if-none-match": etag } });
    await unchanged.body?.cancel();
    assert.equal(unchanged.status, 304);
    const missing = await fetch(`${web.url}/missing.bin`);
    await missing.body?.cancel();
    assert.equal(missing.status, 404);
  });
});
