/**
 * A static HTTP file server (the http-server npm package) in its own `node` process, for tests of reading
 * a store through a plain web host.
 *
 * What it does, measured on http-server 14.1.1:
 * - `Range: bytes=A-B` and `bytes=A-` answer 206 with `Content-Range` (an end past the file is clamped; a
 *   start past it is 416). Suffix ranges (`bytes=-N`) answer 416, and a multi-range request gets only its
 *   first range, as a plain 206.
 * - ETags are weak, `W/"inode-size-mtime"`. `If-None-Match` with that one tag answers 304; a list of tags
 *   or `*` answers 200, and a request that also has `Range` answers 206.
 * - A missing file or a directory answers 404 (no listings, no index pages).
 * - Caching headers are off: `Cache-Control: no-cache, no-store, must-revalidate`.
 *
 * Every test that starts one calls `stop()` in `after()`.
 *
 * @module
 */

import { stat } from "node:fs/promises";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { NodeProcess } from "./_node_process.ts";

const HTTP_SERVER = fileURLToPath(new URL("../../node_modules/http-server/bin/http-server", import.meta.url));

/** A running static file server. */
export interface StaticServer {
  /** Base URL, `http://127.0.0.1:PORT`, without a trailing slash; `${url}/a/b` serves `<directory>/a/b`. */
  url: string;
  /** Kills the server and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
}

/** A TCP port on 127.0.0.1 that was free a moment ago, for a server that must be told its port. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("Cannot find a free TCP port");
  return address.port;
}

/**
 * Serves `directory` over HTTP on 127.0.0.1 and returns once it answers requests.
 *
 * @param directory The directory whose files are served.
 *
 * @example Read part of a served file
 * ```ts
 * import { startStaticServer } from "./static_server.ts";
 *
 * const server = await startStaticServer("/tmp/site");
 * const response = await fetch(`${server.url}/data.bin`, { headers: { range: "bytes=0-9" } });
 * console.log(response.status); // 206, or 404 if there is no data.bin
 * await server.stop();
 * ```
 */
export async function startStaticServer(directory: string): Promise<StaticServer> {
  const isDirectory = await stat(directory).then((info) => info.isDirectory(), () => false);
  if (!isDirectory) throw new Error(`Cannot serve "${directory}" over HTTP: it is not a directory`);
  const port = await freePort();
  const child = new NodeProcess("http-server", [
    HTTP_SERVER,
    directory,
    "-a",
    "127.0.0.1",
    "-p",
    String(port),
    "-c-1",
    "-d",
    "false",
    "-i",
    "false",
    "-s",
  ]);
  const url = `http://127.0.0.1:${port}`;
  await child.waitForHttp(`${url}/`);
  child.unref();
  return { url, stop: () => child.stop() };
}
