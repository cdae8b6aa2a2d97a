/**
 * `tessera serve -c config.json`: serve read replicas over HTTP (Hrana 2 for libSQL clients, a JSON API,
 * metrics and health), and optionally the store's objects for browser replicas and CDNs, until stopped.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { createApp, DATABASE_NAME_RULE, isDatabaseName } from "../server/app.ts";
import {
  loadServerConfig,
  openServerDatabases,
  parseServerConfig,
  readSecret,
  type ServerConfig,
} from "../server/config.ts";
import { isCorsOrigin, OBJECTS_PATH } from "../server/objects.ts";
import { listen } from "../server/serve.ts";
import { type CliIo, EXIT, UsageError } from "./_io.ts";
import { stopSignals } from "./_signals.ts";
import { wholeNumberOption } from "./_values.ts";

/** `tessera serve --help`. */
export const SERVE_HELP = `Usage: tessera serve -c CONFIG [options]
       tessera serve --store URL --db NAME [--db NAME...] (--token TOKEN... | --public)
                     [--metrics-token TOKEN | --public-metrics] [--objects [--cors-origin ORIGIN]]
                     [options]

Serve read replicas over HTTP until stopped. libSQL clients read them by URL, unchanged:
createClient({ url: "http://HOST:PORT/NAME/", authToken }) speaks Hrana 2 to POST /NAME/v2/pipeline
(the trailing slash matters; POST /v2/pipeline serves the default database). curl users have
POST /v1/db/NAME/query {"sql": "...", "args": [...]}, GET /v1/db/NAME/status and
POST /v1/db/NAME/refresh; GET /metrics is Prometheus text and GET /healthz answers 200 while serving.
/metrics names every database, so it needs the metrics token (metricsToken, --metrics-token), unless
every database is public or publicMetrics (--public-metrics) opens it to anyone; otherwise it is 401.
Every answer carries Tessera-Sequence (the snapshot that served it); send Tessera-Min-Sequence: N to
wait (up to maxBookmarkWaitMs) until the replica serves N or later. docs/SERVER.md has the config,
every endpoint, limit and error code.

With --objects (the config's "objects"), GET and HEAD /v1/objects/KEY serve the store's objects with
caching headers, so a browser replica reads them with new HttpStore("http://HOST:PORT/v1/objects")
and a CDN in front caches them: chunks, packs and manifests as immutable, each database's pointer
revalidated (an unchanged one is a 304). Only the pointers and manifests of the served databases are
readable; any other key answers 404.

Stop with Ctrl-C or SIGTERM: new requests get 503, those in flight finish (up to shutdownTimeoutMs),
open streams are rolled back, replicas close, and it exits 0; a second signal exits at once.

Options:
  -c, --config FILE|JSON   the server config (a file, @file, or JSON text)
  --store URL              without -c: the store (file:///dir, s3://bucket/prefix, https://host/prefix)
  --db NAME                without -c: a database to serve, by its name in the store (repeat for
                           more): 1-128 letters, digits, "_", "-" or "." (not healthz, metrics, v1,
                           v2, v3, "." or ".."); to serve another, use -c with "source"
  --token TOKEN            without -c: a bearer token that opens every --db (repeat for more);
                           env:NAME reads it from the environment variable NAME, so that it does
                           not show in ps; no spaces or control characters
  --public                 without -c: serve every --db with no token
  --metrics-token TOKEN    without -c: the bearer token GET /metrics needs (env:NAME as for --token)
  --public-metrics         without -c: GET /metrics answers anyone, though the databases need tokens
  --objects                without -c: also serve the --store's objects at /v1/objects/KEY, to the
                           holders of the --token tokens (or anyone, with --public)
  --cors-origin ORIGIN     with --objects: the origin whose pages may read them ("*" or
                           https://app.example.com; default "*" with --public, none with --token)
  --hostname HOST          listen on HOST (default: the config's, or 127.0.0.1)
  --port N                 listen on port N; 0 picks a free one (default: the config's, or 8080)
  --json                   one JSON event per line on stdout ({"event":"listening",...} first)

Exit codes: 0 stopped by a signal, 1 failed (an invalid config, a database that could not be opened,
the port taken), 2 bad usage (a --db that is not a name, a --token a header cannot carry), 3 a
database not found.
`;

// The token itself is never shown: only which flag gave it.
function checkToken(flag: string, value: string, env: Record<string, string | undefined>): void {
  const read = readSecret(value, env);
  if ("problem" in read) throw new UsageError(`serve: ${flag} ${read.problem}`);
}

/** Runs `tessera serve`. */
export async function serveCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    allowPositionals: false,
    options: {
      help: { type: "boolean", short: "h", default: false },
      config: { type: "string", short: "c" },
      store: { type: "string" },
      db: { type: "string", multiple: true },
      token: { type: "string", multiple: true },
      public: { type: "boolean", default: false },
      "metrics-token": { type: "string" },
      "public-metrics": { type: "boolean", default: false },
      objects: { type: "boolean", default: false },
      "cors-origin": { type: "string" },
      hostname: { type: "string" },
      port: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    io.stdout(SERVE_HELP);
    return EXIT.ok;
  }
  let config: ServerConfig;
  if (values.config !== undefined) {
    if (
      values.store !== undefined || values.db !== undefined || values.token !== undefined ||
      values.public || values["metrics-token"] !== undefined || values["public-metrics"] ||
      values.objects || values["cors-origin"] !== undefined
    ) {
      throw new UsageError(
        "serve: give either -c CONFIG or --store/--db/--token/--public/--metrics-token/--public-metrics/" +
          "--objects/--cors-origin, not both (the config has metricsToken, publicMetrics and objects)",
      );
    }
    config = await loadServerConfig(values.config, io.env);
  } else {
    if (values.store === undefined || values.db === undefined) {
      throw new UsageError("serve: give -c CONFIG, or --store URL and --db NAME");
    }
    if (values.public === (values.token !== undefined)) {
      throw new UsageError("serve: give --token TOKEN (once or more) or --public");
    }
    if (values["metrics-token"] !== undefined && values["public-metrics"]) {
      throw new UsageError("serve: give --metrics-token TOKEN or --public-metrics, not both");
    }
    const corsOrigin = values["cors-origin"];
    if (corsOrigin !== undefined && !values.objects) {
      throw new UsageError("serve: --cors-origin needs --objects (it is the objects endpoint's origin)");
    }
    if (corsOrigin !== undefined && !isCorsOrigin(corsOrigin)) {
      throw new UsageError(
        `serve: --cors-origin ${JSON.stringify(corsOrigin)} is not "*" or an origin such as ` +
          "https://app.example.com (scheme, host and port; no path)",
      );
    }
    for (const name of values.db) {
      if (!isDatabaseName(name)) {
        throw new UsageError(
          `serve: --db ${JSON.stringify(name)} is not a database name: a name is ${DATABASE_NAME_RULE}; ` +
            `to serve the database stored as ${JSON.stringify(name)}, use -c with a config whose database ` +
            `has "source": ${JSON.stringify(name)}`,
        );
      }
    }
    const tokens = values.token ?? [];
    tokens.forEach((token, i) =>
      checkToken(tokens.length > 1 ? `--token #${i + 1}` : "--token", token, io.env)
    );
    if (values["metrics-token"] !== undefined) {
      checkToken("--metrics-token", values["metrics-token"], io.env);
    }
    const databases = Object.fromEntries(
      values.db.map((name) => [name, values.public ? { public: true } : { tokens: values.token }]),
    );
    config = parseServerConfig(
      {
        store: values.store,
        databases,
        metricsToken: values["metrics-token"],
        publicMetrics: values["public-metrics"] || undefined,
        // The served databases, to the same readers: --db names are names in the store.
        objects: values.objects
          ? { ...(values.public ? { public: true } : { tokens: values.token }), corsOrigin }
          : undefined,
      },
      "the command line",
      io.env,
    );
  }
  if (values.hostname !== undefined) config.hostname = values.hostname;
  if (values.port !== undefined) config.port = wholeNumberOption(values, "port", { fallback: 8080 });
  const say = (event: Record<string, unknown>, text: string) => {
    if (values.json) io.stdout(JSON.stringify(event) + "\n");
    else io.stderr(`tessera: ${text}\n`);
  };

  const signals = stopSignals((signal) =>
    say({ event: "exit", signal, graceful: false }, `${signal} again: exiting now`)
  );
  try {
    const options = await openServerDatabases(config, io.env);
    const app = createApp(options);
    let server;
    try {
      server = await listen(app, { hostname: config.hostname, port: config.port });
    } catch (error) {
      await app.shutdown({ timeoutMs: 0 });
      throw error;
    }
    const names = [...config.databases.keys()];
    const objects = config.objects === undefined ? undefined : `${server.url}${OBJECTS_PATH}`;
    say(
      { event: "listening", url: server.url, runtime: server.runtime, databases: names, objects },
      `listening on ${server.url} (${server.runtime}); databases: ${
        names.map((n) => `${n} (${server.url}/${n}/)`).join(", ")
      }${objects === undefined ? "" : `; objects: ${objects}`}`,
    );
    const signal = await signals.stopped;
    say({ event: "stopping", signal }, `${signal}: finishing requests in flight, then closing`);
    const started = Date.now();
    await server.close({ timeoutMs: config.shutdownTimeoutMs });
    say({ event: "exit", signal, graceful: true, ms: Date.now() - started }, "stopped");
    // A connection still open past the bound (a client that never finished its request) would keep the
    // runtime's listener, and so the process, alive: the process ends a moment after stopping regardless.
    const exit = setTimeout(() => process.exit(process.exitCode ?? EXIT.ok), 200) as { unref?: () => void };
    exit.unref?.();
    return EXIT.ok;
  } finally {
    signals.dispose();
  }
}
