import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { format, inspect } from "node:util";
import { type ListEntry, S3Client, type S3ClientOptions } from "../../src/s3/client.ts";
import { s3OptionsFromEnv } from "../../src/s3/env.ts";
import { type FaultProxy, startFaultProxy } from "../_helpers/fault_proxy.ts";
import { type S3TestServer, startS3Server } from "../_helpers/s3_server.ts";

const ACCESS_KEY_ID = "AKIDtessera0000";
const SECRET = "SECRETtesseraKEY/with+chars";
const TOKEN = "TOKENtessera123";

/** Text that must never show: the secrets (also percent-encoded, hence the prefixes) and signing output. */
const FORBIDDEN = [SECRET, TOKEN, "SECRETtessera", "TOKENtessera", "Signature=", "AWS4-HMAC-SHA256"];

function assertClean(text: string, where: string): void {
  for (const needle of FORBIDDEN) {
    assert.ok(!text.includes(needle), `${where} contains "${needle}":\n${text}`);
  }
  assert.ok(!/x-amz-security-token/i.test(text), `${where} contains the session token header:\n${text}`);
}

/** Every way a program might turn an error into text: message, stack, JSON, inspect, the cause chain. */
function assertErrorClean(error: unknown): void {
  assertClean(inspect(error, { depth: 10 }), "inspect(error)");
  assertClean(inspect(error, { depth: 10, showHidden: true }), "inspect(error, showHidden)");
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 10; depth++) {
    const where = depth === 0 ? "the error" : `cause #${depth}`;
    assertClean(String(current), `String(${where})`);
    if (typeof current === "object") {
      assertClean(JSON.stringify({ ...current }), `JSON of ${where}'s own properties`);
      const names = Object.getOwnPropertyNames(current);
      assertClean(JSON.stringify(current, names), `JSON of all ${where}'s own property names`);
    }
    if (current instanceof Error) {
      assertClean(current.message, `${where}.message`);
      assertClean(current.stack ?? "", `${where}.stack`);
      current = current.cause;
    } else {
      break;
    }
  }
}

function assertClientClean(client: unknown): void {
  assertClean(inspect(client, { depth: 10 }), "inspect(client)");
  assertClean(inspect(client, { depth: 10, showHidden: true }), "inspect(client, showHidden)");
  assertClean(JSON.stringify(client), "JSON.stringify(client)");
  assertClean(String(client), "String(client)");
}

type ConsoleMethod = "log" | "error" | "warn" | "debug" | "info" | "trace";
const CONSOLE_METHODS: ConsoleMethod[] = ["log", "error", "warn", "debug", "info", "trace"];

/** Runs `body` with console output captured rather than printed, and returns what was printed. */
async function capturingConsole(body: () => Promise<void>): Promise<string[]> {
  const printed: string[] = [];
  const saved = CONSOLE_METHODS.map((name) => [name, console[name]] as const);
  for (const name of CONSOLE_METHODS) {
    console[name] = (...args: unknown[]) => printed.push(`console.${name}: ${format(...args)}`);
  }
  try {
    await body();
  } finally {
    for (const [name, original] of saved) console[name] = original;
  }
  return printed;
}

async function collect(entries: AsyncIterable<ListEntry>): Promise<ListEntry[]> {
  const all: ListEntry[] = [];
  for await (const entry of entries) all.push(entry);
  return all;
}

/** Each operation once; every one must fail. */
async function failEveryOperation(client: S3Client): Promise<unknown[]> {
  const calls: (() => Promise<unknown>)[] = [
    () => client.getObject("db/manifest"),
    () => client.getObject("db/manifest", { range: { offset: 10, length: 10 } }),
    () => client.headObject("db/manifest"),
    () => client.putObject("db/manifest", "bytes", { metadata: { note: "x" } }),
    () => client.deleteObject("db/manifest"),
    () => client.deleteObjects(["db/a", "db/b"]),
    () => client.copyObject("db/a", "db/b"),
    () => collect(client.listObjectsV2({ prefix: "db/" })),
  ];
  const errors: unknown[] = [];
  for (const call of calls) {
    await assert.rejects(call(), (error: unknown) => {
      errors.push(error);
      return true;
    });
  }
  return errors;
}

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  assert.ok(address !== null && typeof address === "object");
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return address.port;
}

describe("credentials never appear in errors or console output", () => {
  let server: S3TestServer;
  let proxy: FaultProxy;

  /** A client configured the way a user does it: from AWS_* variables holding the secret and the token. */
  function clientFor(endpoint: string, extra: Partial<S3ClientOptions> = {}): S3Client {
    const env = {
      AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
      AWS_SECRET_ACCESS_KEY: SECRET,
      AWS_SESSION_TOKEN: TOKEN,
      AWS_REGION: "us-east-1",
      AWS_ENDPOINT_URL: endpoint,
    };
    return new S3Client(
      s3OptionsFromEnv(env, {
        bucket: server.bucket,
        maxAttempts: 2,
        baseDelayMs: 1,
        maxDelayMs: 5,
        ...extra,
      }),
    );
  }

  async function checkFailingClient(client: S3Client): Promise<void> {
    assertClientClean(client);
    let errors: unknown[] = [];
    const printed = await capturingConsole(async () => {
      errors = await failEveryOperation(client);
    });
    assert.equal(errors.length, 8);
    for (const error of errors) assertErrorClean(error);
    assertClientClean(client);
    for (const line of printed) assertClean(line, "console output");
  }

  before(async () => {
    server = await startS3Server();
    proxy = await startFaultProxy(server.endpoint);
  });

  after(async () => {
    await proxy?.stop();
    await server?.stop();
  });

  it("the env-configured client really signs with the secret and sends the token, so these checks can fail", async () => {
    const seen: Headers[] = [];
    const recording = new S3Client({
      ...s3OptionsFromEnv({
        AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY: SECRET,
        AWS_SESSION_TOKEN: TOKEN,
        AWS_ENDPOINT_URL: server.endpoint,
      }, { bucket: server.bucket }),
      fetch: (input, init) => {
        seen.push(new Headers(init?.headers));
        return fetch(input, init);
      },
    });
    // s3rver knows only its own access key id, so it refuses this one.
    await assert.rejects(recording.putObject("secrets/probe", "x"), /InvalidAccessKeyId/);
    assert.equal(seen[0]?.get("x-amz-security-token"), TOKEN);
    assert.match(seen[0]?.get("authorization") ?? "", /^AWS4-HMAC-SHA256 Credential=AKIDtessera0000\//);
    assert.throws(() => assertClean(`header ${TOKEN}`, "a probe"));
  });

  it("the checks find a secret in a cause, a stack, an extra property or a client's public fields", () => {
    assert.throws(() => assertErrorClean(new Error("outer", { cause: new Error(`inner ${SECRET}`) })));
    assert.throws(() => assertErrorClean(Object.assign(new Error("x"), { request: { token: TOKEN } })));
    const withStack = new Error("x");
    withStack.stack = `Error: x\n    at sign (AWS4-HMAC-SHA256 Signature=abc)`;
    assert.throws(() => assertErrorClean(withStack));
    assert.throws(() => assertClientClean({ credentials: { secretAccessKey: SECRET } }));
  });

  it("errors from s3rver refusing the unknown access key id (403 InvalidAccessKeyId) hold no secret", async () => {
    await checkFailingClient(clientFor(server.endpoint));
  });

  it("errors from a server answering 403 AccessDenied to everything hold no secret", async () => {
    await proxy.setRules([{ fault: "status", status: 403, code: "AccessDenied" }]);
    await checkFailingClient(clientFor(proxy.endpoint));
  });

  it("errors from a server answering 500 to everything, after retries, hold no secret", async () => {
    await proxy.setRules([{ fault: "status", status: 500, code: "InternalError" }]);
    await checkFailingClient(clientFor(proxy.endpoint));
  });

  it("errors from a connection that is reset every time hold no secret", async () => {
    await proxy.setRules([{ fault: "reset" }]);
    await checkFailingClient(clientFor(proxy.endpoint));
  });

  it("errors from a closed port (connection refused) hold no secret", async () => {
    const port = await closedPort();
    await checkFailingClient(clientFor(`http://127.0.0.1:${port}`));
  });

  it("the TypeError for an invalid endpoint URL holds no secret", async () => {
    const endpoints = [
      "not a url",
      "ftp://127.0.0.1:21/",
      // A user who pastes credentials into the endpoint gets an error naming only its origin.
      `http://${ACCESS_KEY_ID}:${encodeURIComponent(SECRET)}@127.0.0.1:9000/`,
      `http://127.0.0.1:9000/?X-Amz-Security-Token=${TOKEN}`,
    ];
    for (const endpoint of endpoints) {
      const printed = await capturingConsole(async () => {
        assert.throws(() => clientFor(endpoint), (error: unknown) => {
          assert.ok(
            error instanceof TypeError,
            `expected a TypeError for "${endpoint}", got ${String(error)}`,
          );
          assert.match(error.message, /Cannot use S3 endpoint/);
          assertErrorClean(error);
          return true;
        });
      });
      for (const line of printed) assertClean(line, "console output");
    }
  });
});
