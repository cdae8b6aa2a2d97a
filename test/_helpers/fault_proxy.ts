/**
 * A fault-injecting HTTP proxy, in its own `node` process, in front of a real server.
 *
 * Requests are forwarded unchanged (method, path and query, headers including `Host`, streamed body) and
 * responses streamed back, except where a {@linkcode FaultRule} matches. Every test that starts one calls
 * `stop()` in `after()`.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { NodeProcess } from "./_node_process.ts";

const MAIN = fileURLToPath(new URL("./fault_proxy_main.mjs", import.meta.url));

/**
 * What the proxy does to a matching request:
 * - `"status"`: answers {@linkcode FaultRule.status} with an S3 XML error body, without forwarding;
 * - `"reset"`: reads the request, then resets the connection without answering;
 * - `"stall"`: reads the request and never answers, until the client gives up;
 * - `"stall-body"`: forwards, sends the upstream status, headers and first half of the body, then stalls;
 * - `"truncate"`: forwards, sends the upstream headers (with the full Content-Length) and the first half of
 *   the body, then closes the connection (a response with an empty body, such as a PUT's, arrives whole);
 * - `"delay"`: waits {@linkcode FaultRule.delayMs}, then forwards normally.
 */
export type Fault = "status" | "reset" | "stall" | "stall-body" | "truncate" | "delay";

/** When and how the proxy misbehaves. Rules are checked in order; the first that matches applies. */
export interface FaultRule {
  /** Only requests with this method (any case) match. */
  method?: string;
  /** Only requests whose path and query contain this text match; text written `/.../` is a regex. */
  path?: string;
  /** What happens to a matching request. */
  fault: Fault;
  /**
   * The status a `"status"` fault answers.
   *
   * @default {503}
   */
  status?: number;
  /**
   * The S3 error code in the body of a `"status"` fault, such as `"SlowDown"` or `"InternalError"`.
   *
   * @default {"SlowDown" for 429 and 503, "AccessDenied" for 403, "NoSuchKey" for 404, else "InternalError"}
   */
  code?: string;
  /**
   * How many matching requests the rule applies to; after that it no longer matches.
   *
   * @default {unlimited}
   */
  times?: number;
  /** How long a `"delay"` fault waits before forwarding, in milliseconds; required for `"delay"`. */
  delayMs?: number;
}

/** One request the proxy received, and the fault it applied (`null`: forwarded normally). */
export interface ProxyLogEntry {
  /** The request method, such as `"GET"`. */
  method: string;
  /** The path and query as the client sent them. */
  path: string;
  /** The fault applied, or `null`. */
  fault: Fault | null;
  /** The status the real server answered a forwarded request with; `null` when it was not forwarded (or
   * has not answered yet). */
  status: number | null;
}

/** Options for {@linkcode startFaultProxy}. */
export interface FaultProxyOptions {
  /**
   * Milliseconds every proxied request waits, on arrival, before its rule (or plain forwarding) applies:
   * a fixed round trip, as a distant server adds to each request.
   *
   * @default {0}
   */
  latencyMs?: number;
}

/** A running fault proxy. */
export interface FaultProxy {
  /** Base URL, `http://127.0.0.1:PORT`; use it in place of the target's. */
  endpoint: string;
  /** Replaces all rules (and their `times` counters). Rejects with a `TypeError` for an invalid rule. */
  setRules(rules: FaultRule[]): Promise<void>;
  /** Removes all rules, so every request is forwarded. */
  clear(): Promise<void>;
  /** Every request received since the start or the last `resetLog()`, in order of arrival. */
  log(): Promise<ProxyLogEntry[]>;
  /** Empties the log. */
  resetLog(): Promise<void>;
  /** Kills the proxy (not its target) and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts a fault proxy on 127.0.0.1 forwarding to `target`.
 *
 * @param target The `http://host:port` origin of the real server.
 * @param options A fixed latency added to every request.
 *
 * @example Make the next upload fail once with 503 SlowDown
 * ```ts
 * import { startFaultProxy } from "./fault_proxy.ts";
 * import { startS3Server } from "./s3_server.ts";
 *
 * const s3 = await startS3Server();
 * const proxy = await startFaultProxy(s3.endpoint);
 * await proxy.setRules([{ method: "PUT", fault: "status", code: "SlowDown", times: 1 }]);
 * const response = await fetch(`${proxy.endpoint}/${s3.bucket}/key`, { method: "PUT", body: "x" });
 * console.log(response.status); // 503
 * await proxy.stop();
 * await s3.stop();
 * ```
 */
export async function startFaultProxy(target: string, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const latencyMs = options.latencyMs ?? 0;
  if (!Number.isFinite(latencyMs) || latencyMs < 0) {
    throw new RangeError(`Cannot start fault proxy: latencyMs must be a number ≥ 0, not ${latencyMs}`);
  }
  const child = new NodeProcess("fault proxy", [MAIN, "--target", target, "--latency-ms", String(latencyMs)]);
  const { port, adminPort } = await child.readyLine();
  if (typeof port !== "number" || typeof adminPort !== "number") {
    await child.stop();
    throw new Error("Cannot start fault proxy: its ready line has no ports");
  }
  child.unref();
  const admin = `http://127.0.0.1:${adminPort}`;
  async function call(method: string, path: string, body?: unknown): Promise<unknown> {
    const response = await fetch(`${admin}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    const value: unknown = text === "" ? undefined : JSON.parse(text);
    if (response.ok) return value;
    const reason = (value as { error?: string } | undefined)?.error ?? `status ${response.status}`;
    const message = `Cannot ${method} ${path} on the fault proxy: ${reason}`;
    throw response.status === 400 ? new TypeError(message) : new Error(message);
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async setRules(rules) {
      await call("PUT", "/rules", rules);
    },
    async clear() {
      await call("DELETE", "/rules");
    },
    async log() {
      return await call("GET", "/log") as ProxyLogEntry[];
    },
    async resetLog() {
      await call("DELETE", "/log");
    },
    stop: () => child.stop(),
  };
}
