/**
 * A real S3 server (s3rver) in its own `node` process, for tests.
 *
 * s3rver speaks S3 over plain HTTP, path style (`http://127.0.0.1:PORT/bucket/key`). It does not verify
 * SigV4 signatures (unsigned requests work), ignores conditional PUTs and has no versioning. Every test
 * that starts one calls `stop()` in `after()`.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import type { S3ClientOptions } from "../../src/s3/client.ts";
import { S3Store } from "../../src/store/s3.ts";
import { NodeProcess } from "./_node_process.ts";
import { makeTempDir, removeDir } from "./temp.ts";

const MAIN = fileURLToPath(new URL("./s3rver_main.mjs", import.meta.url));

/** A running s3rver: where it listens, the credentials it accepts and how to stop it. */
export interface S3TestServer {
  /** Base URL, `http://127.0.0.1:PORT`, without a trailing slash. */
  endpoint: string;
  /** The TCP port on 127.0.0.1. */
  port: number;
  /** The first configured bucket (`"tessera-test"` by default). */
  bucket: string;
  /** Always `"us-east-1"`. */
  region: string;
  /** s3rver's fixed access key id, `"S3RVER"`. */
  accessKeyId: string;
  /** s3rver's fixed secret, `"S3RVER"`. */
  secretAccessKey: string;
  /** The temporary directory holding the server's objects; removed by `stop()`. */
  directory: string;
  /** Kills the server, waits for it to exit and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

/** Options for {@linkcode startS3Server}. */
export interface StartS3ServerOptions {
  /**
   * Buckets to create before the server starts; the first becomes {@linkcode S3TestServer.bucket}.
   *
   * @default {["tessera-test"]}
   */
  buckets?: string[];
  /** Gives the buckets a CORS rule letting pages of any origin GET and HEAD them (browser tests). */
  cors?: boolean;
}

/**
 * Starts s3rver on 127.0.0.1 on a free port, with its buckets created and an empty temporary directory.
 *
 * @example Start a server for a test file
 * ```ts
 * import { after, before, it } from "node:test";
 * import { startS3Server, type S3TestServer } from "./s3_server.ts";
 *
 * let s3: S3TestServer;
 * before(async () => {
 *   s3 = await startS3Server();
 * });
 * after(() => s3.stop());
 * it("stores an object", async () => {
 *   await fetch(`${s3.endpoint}/${s3.bucket}/hello`, { method: "PUT", body: "hi" });
 * });
 * ```
 */
export async function startS3Server(options: StartS3ServerOptions = {}): Promise<S3TestServer> {
  const buckets = options.buckets ?? ["tessera-test"];
  const bucket = buckets[0];
  if (bucket === undefined) throw new TypeError("Cannot start s3rver: give at least one bucket");
  const directory = await makeTempDir("s3rver");
  let child: NodeProcess | undefined;
  try {
    const bucketArgs = buckets.flatMap((name) => ["--bucket", name]);
    child = new NodeProcess("s3rver", [
      "--openssl-legacy-provider",
      MAIN,
      "--directory",
      directory,
      ...bucketArgs,
      ...(options.cors ? ["--cors"] : []),
    ]);
    const { port } = await child.readyLine();
    if (typeof port !== "number") throw new Error(`Cannot start s3rver: its ready line has no port`);
    child.unref();
    const running = child;
    return {
      endpoint: `http://127.0.0.1:${port}`,
      port,
      bucket,
      region: "us-east-1",
      accessKeyId: "S3RVER",
      secretAccessKey: "S3RVER",
      directory,
      async stop() {
        await running.stop();
        await removeDir(directory);
      },
    };
  } catch (error) {
    await child?.stop();
    await removeDir(directory);
    throw error;
  }
}

/**
 * An `S3Store` on `server`'s first bucket with its credentials, reached at `endpoint` (a proxy in front of
 * it) or directly, with keys under `prefix`; `client` adds S3 client options (retries, timeouts).
 */
export function s3StoreOn(
  server: S3TestServer,
  options: { endpoint?: string; prefix?: string; client?: Partial<S3ClientOptions> } = {},
): S3Store {
  return new S3Store({
    bucket: server.bucket,
    endpoint: options.endpoint ?? server.endpoint,
    region: server.region,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    ...options.client,
  }, { prefix: options.prefix });
}
