import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { type ListEntry, S3Client, type S3ClientOptions } from "../../src/s3/client.ts";
import { S3Error } from "../../src/s3/errors.ts";
import {
  type FaultProxy,
  type FaultRule,
  type ProxyLogEntry,
  startFaultProxy,
} from "../_helpers/fault_proxy.ts";
import { type S3TestServer, startS3Server } from "../_helpers/s3_server.ts";

const MAX_ATTEMPTS = 4;

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function collect(entries: AsyncIterable<ListEntry>): Promise<ListEntry[]> {
  const all: ListEntry[] = [];
  for await (const entry of entries) all.push(entry);
  return all;
}

function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === "AbortError";
}

describe("S3Client through a fault proxy in front of s3rver", () => {
  let server: S3TestServer;
  let proxy: FaultProxy;
  let direct: S3Client;
  const payload = randomBytes(256 * 1024);
  const key = "faults/object.bin";

  /** A client that talks to s3rver through the proxy, retrying fast. */
  function proxied(options: Partial<S3ClientOptions> = {}, via: FaultProxy = proxy): S3Client {
    return new S3Client({
      bucket: server.bucket,
      endpoint: via.endpoint,
      region: server.region,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      maxAttempts: MAX_ATTEMPTS,
      baseDelayMs: 5,
      maxDelayMs: 50,
      timeoutMs: 5_000,
      ...options,
    });
  }

  /** Installs `rules` and empties the log, so the log then holds only the requests of the test. */
  async function arm(rules: FaultRule[]): Promise<void> {
    await proxy.setRules(rules);
    await proxy.resetLog();
  }

  async function requests(method?: string, via: FaultProxy = proxy): Promise<ProxyLogEntry[]> {
    const log = await via.log();
    return method === undefined ? log : log.filter((entry) => entry.method === method);
  }

  /**
   * Runs `test` against a proxy of its own. Deno's and Bun's fetch silently resend a request once when a
   * reused keep-alive connection is reset, so a reset on a warm connection never reaches the client; a new
   * proxy has no warm connections, so every reset does.
   */
  async function withFreshProxy(rules: FaultRule[], test: (via: FaultProxy) => Promise<void>): Promise<void> {
    const fresh = await startFaultProxy(server.endpoint);
    try {
      await fresh.setRules(rules);
      await test(fresh);
    } finally {
      await fresh.stop();
    }
  }

  /** A fetch that counts the tries the client itself makes. */
  function countingFetch(counter: { calls: number }): typeof fetch {
    return (input, init) => {
      counter.calls++;
      return fetch(input, init);
    };
  }

  async function assertGetsPayload(client: S3Client): Promise<void> {
    const got = await client.getObject(key);
    assert.equal(got.status, "ok");
    assert.equal(got.body.length, payload.length);
    assert.deepEqual(got.body, payload);
  }

  async function rejectsWithS3Error(promise: Promise<unknown>): Promise<S3Error> {
    let caught: unknown;
    await assert.rejects(promise, (error: unknown) => {
      caught = error;
      return true;
    });
    assert.ok(caught instanceof S3Error, `expected an S3Error, got ${String(caught)}`);
    return caught;
  }

  before(async () => {
    server = await startS3Server();
    proxy = await startFaultProxy(server.endpoint);
    direct = new S3Client({
      bucket: server.bucket,
      endpoint: server.endpoint,
      region: server.region,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    });
    await direct.putObject(key, payload);
  });

  beforeEach(async () => {
    await proxy.clear();
  });

  after(async () => {
    await proxy?.stop();
    await server?.stop();
  });

  describe("transient faults", () => {
    it("getObject() returns the bytes after two 503 SlowDown answers, in three requests", async () => {
      await arm([{ method: "GET", fault: "status", status: 503, code: "SlowDown", times: 2 }]);
      await assertGetsPayload(proxied());
      assert.deepEqual((await requests()).map((r) => r.fault), ["status", "status", null]);
    });

    it("getObject() returns the bytes after one 500 InternalError, in two requests", async () => {
      await arm([{ method: "GET", fault: "status", status: 500, code: "InternalError", times: 1 }]);
      await assertGetsPayload(proxied());
      assert.deepEqual((await requests()).map((r) => r.fault), ["status", null]);
    });

    it("getObject() returns the bytes after one 429 Too Many Requests, in two requests", async () => {
      await arm([{ method: "GET", fault: "status", status: 429, times: 1 }]);
      await assertGetsPayload(proxied());
      assert.deepEqual((await requests()).map((r) => r.fault), ["status", null]);
    });

    it("getObject() returns the bytes after a 400 RequestTimeout, which S3 sends for a slow upload", async () => {
      await arm([{ method: "GET", fault: "status", status: 400, code: "RequestTimeout", times: 1 }]);
      await assertGetsPayload(proxied());
      assert.equal((await requests()).length, 2);
    });

    it("getObject() returns the bytes after two connection resets, in three requests", async () => {
      await withFreshProxy([{ method: "GET", fault: "reset", times: 2 }], async (via) => {
        const counter = { calls: 0 };
        await assertGetsPayload(proxied({ fetch: countingFetch(counter) }, via));
        assert.equal(counter.calls, 3);
        assert.deepEqual((await requests(undefined, via)).map((r) => r.fault), ["reset", "reset", null]);
      });
    });

    it("getObject() retries a body cut off halfway and returns the full bytes, in two requests", async () => {
      await arm([{ method: "GET", fault: "truncate", times: 1 }]);
      await assertGetsPayload(proxied());
      assert.deepEqual((await requests()).map((r) => r.fault), ["truncate", null]);
    });

    it("getObject() retries a response that never starts once timeoutMs passes, in two requests", async () => {
      await arm([{ method: "GET", fault: "stall", times: 1 }]);
      await assertGetsPayload(proxied({ timeoutMs: 500 }));
      assert.deepEqual((await requests()).map((r) => r.fault), ["stall", null]);
    });

    it("getObject() retries a body that stalls halfway once timeoutMs passes, in two requests", async () => {
      await arm([{ method: "GET", fault: "stall-body", times: 1 }]);
      await assertGetsPayload(proxied({ timeoutMs: 500 }));
      assert.deepEqual((await requests()).map((r) => r.fault), ["stall-body", null]);
    });

    it("a delayed response shorter than timeoutMs is not retried", async () => {
      await arm([{ method: "GET", fault: "delay", delayMs: 200, times: 1 }]);
      await assertGetsPayload(proxied({ timeoutMs: 5_000 }));
      assert.deepEqual((await requests()).map((r) => r.fault), ["delay"]);
    });

    it("headObject() answers after one 503, in two requests", async () => {
      await arm([{ method: "HEAD", fault: "status", status: 503, times: 1 }]);
      const info = await proxied().headObject(key);
      assert.equal(info.status, "ok");
      assert.equal(info.size, payload.length);
      assert.equal((await requests("HEAD")).length, 2);
    });

    it("putObject() retried after a connection reset sends the whole body again", async () => {
      const bytes = randomBytes(300_000);
      await withFreshProxy([{ method: "PUT", fault: "reset", times: 1 }], async (via) => {
        const counter = { calls: 0 };
        await proxied({ fetch: countingFetch(counter) }, via).putObject("faults/put-after-reset.bin", bytes);
        assert.equal(counter.calls, 2);
        assert.deepEqual((await requests("PUT", via)).map((r) => r.fault), ["reset", null]);
      });
      const got = await direct.getObject("faults/put-after-reset.bin");
      assert.equal(got.status, "ok");
      assert.deepEqual(got.body, bytes);
    });

    it("putObject() of a stream retried after a 503 sends the whole stream's bytes again", async () => {
      const bytes = randomBytes(200_000);
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < bytes.length; i += 16_384) controller.enqueue(bytes.slice(i, i + 16_384));
          controller.close();
        },
      });
      await arm([{ method: "PUT", fault: "status", status: 503, times: 1 }]);
      await proxied().putObject("faults/stream-after-503.bin", stream);
      assert.equal((await requests("PUT")).length, 2);
      const got = await direct.getObject("faults/stream-after-503.bin");
      assert.equal(got.status, "ok");
      assert.deepEqual(got.body, bytes);
    });

    it("listObjectsV2() retries a failed continuation page and still yields every key once", async () => {
      const keys = Array.from({ length: 12 }, (_, i) => `faults-list/key-${String(i).padStart(2, "0")}`);
      for (const k of keys) await direct.putObject(k, k);
      await arm([{ method: "GET", path: "continuation-token=", fault: "status", status: 503, times: 1 }]);
      const entries = await collect(proxied().listObjectsV2({ prefix: "faults-list/", pageSize: 5 }));
      assert.deepEqual(entries.map((e) => e.type === "object" ? e.key : e.prefix), keys);
      // Three pages, the second sent twice with the same token.
      const log = await requests();
      assert.deepEqual(log.map((r) => r.fault), [null, "status", null, null]);
      assert.equal(log[1]?.path, log[2]?.path);
    });

    it("deleteObjects() retried after a connection reset deletes every key", async () => {
      const keys = ["faults-del-a", "faults-del-b", "faults-del-c"];
      for (const k of keys) await direct.putObject(k, k);
      await withFreshProxy([{ method: "POST", fault: "reset", times: 1 }], async (via) => {
        const result = await proxied({}, via).deleteObjects(keys);
        assert.deepEqual(result, { deleted: keys, errors: [] });
        assert.deepEqual((await requests("POST", via)).map((r) => r.fault), ["reset", null]);
      });
      for (const k of keys) assert.deepEqual(await direct.headObject(k), { status: "not_found" });
    });
  });

  describe("permanent faults", () => {
    it("getObject() against 503 forever throws SlowDown after exactly maxAttempts requests", async () => {
      await arm([{ method: "GET", fault: "status", status: 503, code: "SlowDown" }]);
      const error = await rejectsWithS3Error(proxied().getObject(key));
      assert.equal(error.code, "S3_REQUEST_FAILED");
      assert.equal(error.status, 503);
      assert.equal(error.s3Code, "SlowDown");
      assert.equal(error.attempts, MAX_ATTEMPTS);
      assert.equal(error.operation, "GetObject");
      assert.equal(error.bucket, server.bucket);
      assert.equal(error.key, key);
      assert.match(error.message, /GetObject/);
      assert.ok(error.message.includes(`s3://${server.bucket}/${key}`), error.message);
      assert.match(error.message, new RegExp(`after ${MAX_ATTEMPTS} attempts`));
      assert.match(error.message, /HTTP 503 SlowDown/);
      assert.equal((await requests()).length, MAX_ATTEMPTS);
    });

    it("getObject() against resets forever throws an S3Error without a status that says what failed", async () => {
      await withFreshProxy([{ method: "GET", fault: "reset" }], async (via) => {
        const error = await rejectsWithS3Error(proxied({}, via).getObject(key));
        assert.equal(error.code, "S3_REQUEST_FAILED");
        assert.equal(error.status, undefined);
        assert.equal(error.s3Code, undefined);
        assert.equal(error.attempts, MAX_ATTEMPTS);
        assert.ok(error.message.includes(`S3 GetObject of "s3://${server.bucket}/${key}"`), error.message);
        assert.match(error.message, /GET http:\/\/127\.0\.0\.1:\d+\/\S+: waiting for the response failed/);
        assert.match(error.message, /check that the endpoint http:\/\/127\.0\.0\.1:\d+ is reachable/);
        assert.ok(error.cause !== undefined, "the runtime's own error is kept as the cause");
        assert.equal((await requests(undefined, via)).length, MAX_ATTEMPTS);
      });
    });

    it("getObject() against a server that never answers fails after maxAttempts timeouts", async () => {
      await arm([{ method: "GET", fault: "stall" }]);
      const error = await rejectsWithS3Error(proxied({ timeoutMs: 500, maxAttempts: 3 }).getObject(key));
      assert.equal(error.code, "S3_REQUEST_FAILED");
      assert.equal(error.status, undefined);
      assert.equal(error.attempts, 3);
      assert.match(error.message, /no progress within 500 ms while waiting for the response/);
      assert.equal((await requests()).length, 3);
    });

    it("getObject() against a body that always stalls halfway fails after maxAttempts timeouts", async () => {
      await arm([{ method: "GET", fault: "stall-body" }]);
      const error = await rejectsWithS3Error(proxied({ timeoutMs: 500, maxAttempts: 2 }).getObject(key));
      assert.equal(error.attempts, 2);
      assert.match(error.message, /no progress within 500 ms while reading the response body/);
      assert.equal((await requests()).length, 2);
    });

    it("getObject() against a body always cut off halfway fails, saying the body broke off", async () => {
      await arm([{ method: "GET", fault: "truncate" }]);
      const error = await rejectsWithS3Error(proxied({ maxAttempts: 2 }).getObject(key));
      assert.equal(error.status, undefined);
      assert.equal(error.attempts, 2);
      assert.ok(error.message.includes(`"s3://${server.bucket}/${key}"`), error.message);
      assert.match(error.message, /reading the response body failed|the body ended after \d+ of \d+ bytes/);
      assert.equal((await requests()).length, 2);
    });

    it("getObject() does not retry 403 AccessDenied and tells the user to check the credentials", async () => {
      await arm([{ method: "GET", fault: "status", status: 403, code: "AccessDenied" }]);
      const error = await rejectsWithS3Error(proxied().getObject(key));
      assert.equal(error.code, "S3_REQUEST_FAILED");
      assert.equal(error.status, 403);
      assert.equal(error.s3Code, "AccessDenied");
      assert.equal(error.attempts, 1);
      assert.match(error.message, /HTTP 403 AccessDenied/);
      assert.match(error.message, /check the credentials/);
      assert.equal((await requests()).length, 1);
    });

    it("a 403 to a client without credentials says to set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", async () => {
      await arm([{ method: "GET", fault: "status", status: 403 }]);
      const error = await rejectsWithS3Error(proxied({ credentials: null }).getObject(key));
      assert.match(error.message, /no credentials are configured/);
      assert.match(error.message, /AWS_ACCESS_KEY_ID/);
      assert.equal((await requests()).length, 1);
    });

    it("getObject() returns not_found for a 404 NoSuchKey after a single request", async () => {
      await arm([{ method: "GET", fault: "status", status: 404, code: "NoSuchKey" }]);
      assert.deepEqual(await proxied().getObject(key), { status: "not_found" });
      assert.equal((await requests()).length, 1);
    });

    it("getObject() does not retry 501 Not Implemented", async () => {
      await arm([{ method: "GET", fault: "status", status: 501, code: "NotImplemented" }]);
      const error = await rejectsWithS3Error(proxied().getObject(key));
      assert.equal(error.status, 501);
      assert.equal(error.s3Code, "NotImplemented");
      assert.equal(error.attempts, 1);
      assert.equal((await requests()).length, 1);
    });

    it("putObject() does not retry a 400 that is not a timeout", async () => {
      await arm([{ method: "PUT", fault: "status", status: 400, code: "InvalidArgument" }]);
      const error = await rejectsWithS3Error(proxied().putObject("faults/bad-put", "x"));
      assert.equal(error.operation, "PutObject");
      assert.equal(error.status, 400);
      assert.equal(error.s3Code, "InvalidArgument");
      assert.equal((await requests("PUT")).length, 1);
      assert.deepEqual(await direct.headObject("faults/bad-put"), { status: "not_found" });
    });

    it("putObject() against 500 forever throws after exactly maxAttempts requests", async () => {
      await arm([{ method: "PUT", fault: "status", status: 500 }]);
      const error = await rejectsWithS3Error(proxied().putObject("faults/never-stored", "x"));
      assert.equal(error.operation, "PutObject");
      assert.equal(error.status, 500);
      assert.equal(error.attempts, MAX_ATTEMPTS);
      assert.equal((await requests("PUT")).length, MAX_ATTEMPTS);
    });
  });

  describe("cancellation", () => {
    it("an AbortSignal aborted during backoff rejects with an AbortError and sends no more requests", async () => {
      await arm([{ method: "GET", fault: "status", status: 503 }]);
      let firstAnswer!: () => void;
      const answered = new Promise<void>((resolve) => firstAnswer = resolve);
      const client = proxied({
        maxAttempts: 10,
        // Backoff waits up to ten minutes, so the abort lands while the client sleeps.
        baseDelayMs: 600_000,
        maxDelayMs: 600_000,
        fetch: async (input, init) => {
          const response = await fetch(input, init);
          firstAnswer();
          return response;
        },
      });
      const controller = new AbortController();
      const pending = client.getObject(key, { signal: controller.signal });
      await answered;
      await delay(50);
      controller.abort();
      await assert.rejects(pending, (error: unknown) => isAbortError(error));
      await delay(200);
      assert.equal((await requests()).length, 1);
    });

    it("an AbortSignal aborted while a request stalls rejects with an AbortError, not an S3Error", async () => {
      await arm([{ method: "GET", fault: "stall" }]);
      const controller = new AbortController();
      const pending = proxied({ timeoutMs: 60_000 }).getObject(key, { signal: controller.signal });
      while ((await requests()).length === 0) await delay(10);
      controller.abort();
      await assert.rejects(pending, (error: unknown) => isAbortError(error) && !(error instanceof S3Error));
      assert.equal((await requests()).length, 1);
    });

    it("an AbortSignal aborted before the call rejects without sending a request", async () => {
      await arm([]);
      const controller = new AbortController();
      controller.abort();
      await assert.rejects(
        proxied().putObject("faults/never", "x", { signal: controller.signal }),
        (error: unknown) => isAbortError(error),
      );
      await assert.rejects(
        proxied().getObject(key, { signal: controller.signal }),
        (error: unknown) => isAbortError(error),
      );
      assert.equal((await requests()).length, 0);
    });
  });
});
