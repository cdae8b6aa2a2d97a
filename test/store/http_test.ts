import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { TesseraError } from "../../src/errors.ts";
import { HttpStore } from "../../src/store/http.ts";
import { LocalStore } from "../../src/store/local.ts";
import { startStaticServer } from "../_helpers/static_server.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { storeConformance } from "./conformance.ts";

// A plain static file server (the http-server package, in its own process) serves a directory that the
// local store writes: the read-only HTTP store must read it as any store would.
storeConformance("read-only HTTP (static server over a directory store)", async () => {
  const dir = await makeTempDir("http-store");
  const server = await startStaticServer(dir);
  return {
    store: new HttpStore(server.url),
    writer: new LocalStore(dir),
    teardown: async () => {
      await server.stop();
      await removeDir(dir);
    },
  };
});

/** A server standing in for a CDN that wants a token in the query: it records every request it gets. */
async function startTokenServer(): Promise<{ url: string; seen: string[]; stop(): Promise<void> }> {
  const seen: string[] = [];
  const server = createServer((request, response) => {
    seen.push(`${request.method} ${request.url}`);
    const url = new URL(request.url ?? "/", "http://x");
    if (url.searchParams.get("sig") !== "s3cr3t") return void response.writeHead(403).end("forbidden");
    if (url.pathname === "/v1/objects/boom") return void response.writeHead(500).end("broken");
    if (url.pathname !== "/v1/objects/dbs/app/pointer") return void response.writeHead(404).end();
    const body = "0123456789";
    const range = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? "");
    const part = range ? body.slice(Number(range[1]), Number(range[2]) + 1) : body;
    response.writeHead(range ? 206 : 200, {
      "content-length": String(part.length),
      etag: '"e1"',
      ...(range ? { "content-range": `bytes ${range[1]}-${range[2]}/${body.length}` } : {}),
    });
    response.end(request.method === "HEAD" ? undefined : part);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Every message in `error` and its causes. */
function messages(error: unknown): string {
  const parts: string[] = [];
  for (let at = error; at !== undefined && at !== null; at = (at as { cause?: unknown }).cause) {
    parts.push(at instanceof Error ? `${at.name}: ${at.message}\n${at.stack ?? ""}` : String(at));
  }
  return parts.join("\n");
}

describe("HttpStore with a query in its base URL", () => {
  let server: Awaited<ReturnType<typeof startTokenServer>>;

  before(async () => {
    server = await startTokenServer();
  });

  after(async () => {
    await server?.stop();
  });

  it("sends the query with every GET and HEAD, after the key", async () => {
    server.seen.length = 0;
    const store = new HttpStore(`${server.url}/v1/objects/?sig=s3cr3t&v=2`, { maxAttempts: 1 });
    const got = await store.get("dbs/app/pointer");
    assert.equal(got.status, "ok");
    assert.equal(new TextDecoder().decode(got.status === "ok" ? got.body : undefined), "0123456789");
    const ranged = await store.get("dbs/app/pointer", { range: { offset: 2, length: 3 } });
    assert.equal(new TextDecoder().decode(ranged.status === "ok" ? ranged.body : undefined), "234");
    const head = await store.head("dbs/app/pointer");
    assert.equal(head.status === "ok" && head.size, 10);
    assert.deepEqual(await store.get("dbs/app/manifests/1"), { status: "not_found" });
    assert.deepEqual(server.seen, [
      "GET /v1/objects/dbs/app/pointer?sig=s3cr3t&v=2",
      "GET /v1/objects/dbs/app/pointer?sig=s3cr3t&v=2",
      "HEAD /v1/objects/dbs/app/pointer?sig=s3cr3t&v=2",
      "GET /v1/objects/dbs/app/manifests/1?sig=s3cr3t&v=2",
    ]);
  });

  it("never shows the query: not in its url, its description, nor any error", async () => {
    const store = new HttpStore(`${server.url}/v1/objects?sig=s3cr3t`, { maxAttempts: 1 });
    assert.equal(store.url, `${server.url}/v1/objects`);
    assert.equal(store.description, `${server.url}/v1/objects`);

    const failed = await store.get("boom").catch((error: unknown) => error);
    assert.ok(failed instanceof TesseraError);
    assert.equal(
      failed.message,
      `HTTP GET of "${server.url}/v1/objects/boom" failed after 1 attempt: status 500`,
    );

    const wrong = new HttpStore(`${server.url}/v1/objects?sig=wrong-s3cr3t`, { maxAttempts: 1 });
    const forbidden = await wrong.head("dbs/app/pointer").catch((error: unknown) => error);
    assert.match(String((forbidden as Error).message), /status 403; check the store's access headers$/);
    assert.doesNotMatch(messages(forbidden), /s3cr3t/);

    // A refused connection: runtimes quote the URL they fetched in their own error, query and all.
    const closed = await startTokenServer();
    await closed.stop();
    const unreachable = new HttpStore(`${closed.url}/v1/objects?sig=s3cr3t`, { maxAttempts: 1 });
    const refused = await unreachable.get("dbs/app/pointer").catch((error: unknown) => error);
    assert.ok(refused instanceof TesseraError, String(refused));
    assert.equal(refused.code, "HTTP_REQUEST_FAILED");
    assert.match(
      refused.message,
      new RegExp(`^HTTP GET of "${closed.url}/v1/objects/dbs/app/pointer" failed`),
    );
    assert.doesNotMatch(messages(refused), /s3cr3t/);

    assert.throws(() => new HttpStore("notaurl?sig=s3cr3t"), (error: Error) => {
      assert.ok(error instanceof TypeError);
      assert.doesNotMatch(error.message, /s3cr3t/);
      return true;
    });
  });

  it("rejects a base URL with a fragment", () => {
    for (const url of [`${server.url}/v1/objects#top`, `${server.url}/v1/objects?sig=s3cr3t#`]) {
      assert.throws(() => new HttpStore(url), (error: Error) => {
        assert.ok(error instanceof TypeError);
        assert.equal(
          error.message,
          `Cannot open an HTTP store at "${server.url}/v1/objects": its URL has a fragment ("#…"), ` +
            "which is never sent to the server; remove it",
        );
        return true;
      });
    }
  });
});
