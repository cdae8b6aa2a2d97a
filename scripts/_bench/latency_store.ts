/**
 * An S3 store with a distant server's round trip: the test suite's fault proxy in front of s3rver, adding
 * a fixed latency to every request (and nothing else), and counting the requests that pass. On loopback a
 * request costs well under a millisecond, which hides what a design that makes many small requests pays
 * against real S3, where each costs tens of milliseconds before its first byte.
 *
 * @module
 */

import type { AwsCliTarget } from "../../test/_helpers/awscli.ts";
import { type FaultProxy, startFaultProxy } from "../../test/_helpers/fault_proxy.ts";
import type { S3TestServer } from "../../test/_helpers/s3_server.ts";

/** s3rver behind a latency proxy: an {@linkcode AwsCliTarget} whose endpoint is the proxy's. */
export interface LatencyStore extends AwsCliTarget {
  bucket: string;
  latencyMs: number;
  /** The requests the proxy received since the last call (or the start), and a fresh count. */
  takeRequests(): Promise<number>;
  /** Like {@linkcode LatencyStore.takeRequests}, the GET paths themselves (other methods left out). */
  takeLog(): Promise<string[]>;
  /** Stops the proxy, not the server behind it. */
  stop(): Promise<void>;
}

/**
 * Starts a proxy in front of `server` that waits `latencyMs` before forwarding each request.
 *
 * @example Time one GET with 20 ms added
 * ```ts
 * import { startS3Server } from "../../test/_helpers/s3_server.ts";
 * import { startLatencyStore } from "./latency_store.ts";
 *
 * const s3 = await startS3Server({ buckets: ["bench"] });
 * const slow = await startLatencyStore(s3, 20);
 * const started = performance.now();
 * await (await fetch(`${slow.endpoint}/bench/missing`)).body?.cancel();
 * console.log(performance.now() - started >= 20, await slow.takeRequests()); // true 1
 * await slow.stop();
 * await s3.stop();
 * ```
 */
export async function startLatencyStore(server: S3TestServer, latencyMs: number): Promise<LatencyStore> {
  const proxy: FaultProxy = await startFaultProxy(server.endpoint, { latencyMs });
  return {
    endpoint: proxy.endpoint,
    region: server.region,
    accessKeyId: server.accessKeyId,
    secretAccessKey: server.secretAccessKey,
    bucket: server.bucket,
    latencyMs,
    async takeRequests() {
      const count = (await proxy.log()).length;
      await proxy.resetLog();
      return count;
    },
    async takeLog() {
      const log = await proxy.log();
      await proxy.resetLog();
      return log.filter((e) => e.method === "GET").map((e) => e.path);
    },
    stop: () => proxy.stop(),
  };
}
