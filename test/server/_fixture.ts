/**
 * A served replica for the server's tests: the parity database (test/replica/_parity.ts) synced to a
 * directory store, a replica of it, an app and a real listening server, plus read-only @libsql/client
 * connections on the original file for the expected side.
 *
 * @module
 */

import { join } from "node:path";
import type { Client } from "@libsql/client";
import type { IntMode } from "@libsql/core/api";
import { openReplica, type OpenReplicaOptions } from "../../src/replica/open.ts";
import type { Replica } from "../../src/replica/replica.ts";
import { type AppOptions, createApp, type TesseraApp } from "../../src/server/app.ts";
import { listen, type Listening } from "../../src/server/serve.ts";
import { LocalStore } from "../../src/store/local.ts";
import { syncDatabase } from "../../src/write/sync.ts";
import { makeParityDatabase } from "../replica/_parity.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";

/** The token every fixture database accepts. */
export const TOKEN = "fixture-token-0123456789";

export interface Served {
  dir: string;
  /** The original database file. */
  path: string;
  store: LocalStore;
  replica: Replica;
  app: TesseraApp;
  server: Listening;
  /** Read-only @libsql/client connections on the original file, per intMode. */
  files: Map<IntMode, Client>;
  /** Publishes the original file again (after a write to it); returns the new sequence. */
  sync(): Promise<number>;
  close(): Promise<void>;
}

/** Builds and serves the parity database as `parity`. */
export async function serveParity(
  label: string,
  replicaOptions: OpenReplicaOptions = {},
  appOptions: Partial<AppOptions> = {},
): Promise<Served> {
  const dir = await makeTempDir(`server-${label}`);
  const path = join(dir, "parity.db");
  const files = await makeParityDatabase(path);
  const store = new LocalStore(join(dir, "store"));
  const sync = async () => {
    const report = await syncDatabase(path, {
      stores: [store],
      hostname: "h",
      name: "parity",
      spoolDir: join(dir, "spool"),
    });
    return report.sequence;
  };
  await sync();
  const replica = await openReplica("parity", {
    store,
    intMode: "bigint",
    pollIntervalMs: 0,
    ...replicaOptions,
  });
  const app = createApp({ databases: { parity: { replica, tokens: [TOKEN] } }, ...appOptions });
  const server = await listen(app, { port: 0 });
  return {
    dir,
    path,
    store,
    replica,
    app,
    server,
    files,
    sync,
    async close() {
      await server.close({ timeoutMs: 1000 });
      replica.close();
      for (const client of files.values()) client.close();
      await removeDir(dir);
    },
  };
}

/** A parsed JSON body, read field by field in assertions. */
// deno-lint-ignore no-explicit-any
export type Json = any;

/** POSTs a Hrana pipeline to `url` and returns the status, headers and parsed body. */
export async function pipeline(
  url: string,
  body: unknown,
  headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` },
): Promise<{ status: number; headers: Headers; body: Json }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Left as text: the test says what it expected.
  }
  return { status: response.status, headers: response.headers, body: parsed };
}
