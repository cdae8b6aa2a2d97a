/**
 * `tessera replicate DB...`: keep databases published while applications write (`tessera status` and
 * `tessera flush` talk to a running replicator through its spool directory).
 *
 * @module
 */

import { resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { chunkCachesFor } from "../config/stores.ts";
import { TesseraError } from "../errors.ts";
import { deriveName } from "../manifest/naming.ts";
import { Replicator, type ReplicatorEvent } from "../replicate/replicator.ts";
import { restoreIfMissing } from "../replicate/restore_missing.ts";
import { Spool } from "../write/spool.ts";
import { defaultSpoolDir } from "../write/spool.ts";
import { commandContext, localHostname, STORE_OPTIONS, STORE_OPTIONS_HELP } from "./_common.ts";
import { type CliIo, EXIT, UsageError } from "./_io.ts";
import { stopSignals } from "./_signals.ts";
import { durationOption, wholeNumberOption } from "./_values.ts";

/** `tessera replicate --help`. */
export const REPLICATE_HELP = `Usage: tessera replicate DB [DB...] [options]

Keep each SQLite database published to every writable store while applications write to it, in
rollback-journal or WAL mode. Commits are noticed from filesystem events (and a check of the files'
size and time every --poll-ms), and captured after a quiet moment: a consistent image is copied into
the local spool (writers wait only while it is copied, and in WAL mode not at all), then published to
each store on its own, in order, with retries. A store outage or a crash loses nothing captured: the
spool keeps it and the next run publishes it. When the spool outgrows --max-spool-bytes, older
unpublished images are dropped (the newest always stays) and this is reported.

Stop with Ctrl-C or SIGTERM: pending images are published for up to --shutdown-timeout-ms, then it
exits 0 (what could not be published stays in the spool); a second signal exits at once.

Options:
  --name NAME               store the database under NAME (one DB only)
  --hostname HOST           the host name in derived names (default: this machine, or $TESSERA_HOSTNAME)
  --spool DIR               the spool directory (default: config spool_dir, or $TMPDIR/tessera-spool-UID)
  --chunk-size BYTES        chunk size for new snapshots (default 65536)
  --debounce-ms N           quiet time after a commit before capturing (default 100)
  --max-delay-ms N          longest wait while commits keep coming (default 1000)
  --poll-ms N               how often the files are checked besides filesystem events (default 500)
  --no-watch                use polling only
  --max-spool-bytes N       spool bound before older unpublished images are dropped (default 268435456)
  --shutdown-timeout-ms N   how long a signal's flush may take (default 10000)
  --restore-if-missing      when DB does not exist, restore it from the newest snapshot first
                            (stale -wal, -shm and -journal beside it are removed), then replicate
  --touch-every DURATION    write again, this often, the chunks of the newest snapshot that a store wrote
                            more than --touch-older-than ago (for buckets whose lifecycle rules expire
                            objects; e.g. 1d); default never
  --touch-older-than DUR    default 1d (see tessera touch)
  --take-over               take the database's lease even if another replicator seems to hold it
${STORE_OPTIONS_HELP}
  --json                    one JSON event per line on stdout ({"event":"started",...} first)

Exit codes: 0 stopped by a signal, 1 failed (another replicator holds the lease, another writer moved
the pointer, or a store refused), 2 bad usage, 3 database not found.
`;

/** Runs `tessera replicate`. */
export async function replicateCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...STORE_OPTIONS,
      name: { type: "string" },
      hostname: { type: "string" },
      spool: { type: "string" },
      "chunk-size": { type: "string" },
      "debounce-ms": { type: "string" },
      "max-delay-ms": { type: "string" },
      "poll-ms": { type: "string" },
      "no-watch": { type: "boolean", default: false },
      "max-spool-bytes": { type: "string" },
      "shutdown-timeout-ms": { type: "string" },
      "restore-if-missing": { type: "boolean", default: false },
      "take-over": { type: "boolean", default: false },
      "touch-every": { type: "string" },
      "touch-older-than": { type: "string" },
    },
  });
  if (values.help) {
    io.stdout(REPLICATE_HELP);
    return EXIT.ok;
  }
  if (positionals.length === 0) throw new UsageError("replicate: give the database file(s) to replicate");
  if (values.name && positionals.length > 1) {
    throw new UsageError("replicate: --name names one database; give one DB");
  }
  const context = await commandContext(values, io);
  if (context.stores.length === 0) {
    throw new UsageError("replicate: no writable store: give --store or a config target");
  }
  const hostname = values.hostname ?? localHostname(io.env);
  const spoolDir = resolve(values.spool ?? context.config.spoolDir ?? defaultSpoolDir());
  const shutdownMs = wholeNumberOption(values, "shutdown-timeout-ms", { fallback: 10_000 });
  const json = values.json;
  const say = (event: Record<string, unknown>, text: string) => {
    if (json) io.stdout(JSON.stringify(event) + "\n");
    else io.stderr(`tessera: ${text}\n`);
  };

  let fatal: ((error: string) => void) | undefined;
  const failed = new Promise<string>((resolve) => (fatal = resolve));
  const onEvent = (event: ReplicatorEvent) => {
    say({ event: event.type, ...event, type: undefined }, describeEvent(event));
    if (event.type === "fatal") fatal?.(event.error);
  };
  // Signals are handled from here on, also while starting. The event loop must stay up while the
  // replicators' own timers are unref'd.
  const keepAlive = setInterval(() => {}, 1 << 30);
  const signals = stopSignals((signal) =>
    say(
      { event: "exit", signal, flushed: false },
      `${signal} again: exiting without publishing what is pending`,
    )
  );
  const replicators: Replicator[] = [];
  const closeAll = async (flush: boolean) => {
    const left = await Promise.all(replicators.map((r) => r.close({ flush, timeoutMs: shutdownMs })));
    return left.reduce((sum, l) => sum + l.pending, 0);
  };
  try {
    for (const db of positionals) {
      const path = resolve(db);
      const name = values.name ?? await deriveName(hostname, path);
      if (values["restore-if-missing"]) {
        const result = await restoreIfMissing(path, {
          stores: context.readable,
          name,
          caches: chunkCachesFor(context.config),
        });
        for (const warning of result.warnings) io.stderr(`tessera: warning: ${warning}\n`);
        if (result.restored) {
          say(
            {
              event: "restored",
              name,
              path,
              sequence: result.sequence,
              bytes: result.bytes,
              removed: result.removed,
            },
            `restored ${path} from snapshot ${result.sequence} of ${name} (${result.bytes} bytes)` +
              (result.removed.length > 0 ? `; removed stale ${result.removed.join(", ")}` : ""),
          );
        } else if (result.reason === "no snapshot") {
          say(
            { event: "restore_skipped", name, path, reason: result.reason },
            `no snapshot of ${name} to restore`,
          );
        }
      }
      replicators.push(
        await Replicator.start(path, {
          stores: context.stores,
          hostname,
          name: values.name,
          spoolDir,
          chunkSize: wholeNumberOption(values, "chunk-size", {
            fallback: context.config.chunkSize ?? 65536,
            min: 4096,
          }),
          debounceMs: wholeNumberOption(values, "debounce-ms", { fallback: 100 }),
          maxDelayMs: wholeNumberOption(values, "max-delay-ms", { fallback: 1000 }),
          pollIntervalMs: wholeNumberOption(values, "poll-ms", { fallback: 500, min: 10 }),
          watch: !values["no-watch"],
          maxSpoolBytes: wholeNumberOption(values, "max-spool-bytes", { fallback: 256 * 1024 * 1024 }),
          takeOver: values["take-over"],
          touchIntervalMs: values["touch-every"] ? durationOption("--touch-every", values["touch-every"]) : 0,
          touchOlderThanMs: values["touch-older-than"]
            ? durationOption("--touch-older-than", values["touch-older-than"])
            : undefined,
          onEvent,
        }),
      );
    }
  } catch (error) {
    await closeAll(false);
    clearInterval(keepAlive);
    signals.dispose();
    throw error;
  }
  for (const r of replicators) {
    say(
      {
        event: "started",
        name: r.name,
        path: r.path,
        pid: process.pid,
        spool: Spool.dirFor(spoolDir, r.name),
      },
      `replicating ${r.path} as ${r.name} to ${context.stores.map((s) => s.description).join(", ")}`,
    );
  }

  try {
    const outcome = await Promise.race([
      signals.stopped.then((signal) => ({ signal })),
      failed.then((error) => ({ error })),
    ]);
    if ("error" in outcome) {
      await closeAll(false);
      throw new TesseraError("CONFLICT", outcome.error);
    }
    say({ event: "stopping", signal: outcome.signal }, `${outcome.signal}: publishing what is pending`);
    const pending = await closeAll(true);
    say(
      { event: "exit", signal: outcome.signal, flushed: pending === 0, pending },
      pending === 0
        ? "everything captured is published"
        : `${pending} snapshot(s) could not be published in time; they stay in the spool for the next run`,
    );
    return EXIT.ok;
  } finally {
    clearInterval(keepAlive);
    signals.dispose();
  }
}

function describeEvent(e: ReplicatorEvent): string {
  switch (e.type) {
    case "captured":
      return `captured ${e.name} sequence ${e.sequence}: ${e.read} chunks read, ${e.spooled} spooled, ` +
        `source held ${e.heldMs} ms`;
    case "published":
      return `published ${e.name} sequence ${e.sequence} to ${e.store}: ${e.uploaded} chunks, ` +
        `${(e.bytes / 1024).toFixed(1)} KiB`;
    case "publish_failed":
      return `cannot publish ${e.name} sequence ${e.sequence} to ${e.store}, retrying in ` +
        `${(e.retryInMs / 1000).toFixed(1)} s: ${e.error}`;
    case "coalesced":
      return `spool of ${e.name} over ${e.maxSpoolBytes} bytes: dropped unpublished sequence(s) ` +
        `${e.dropped.join(", ")}; the newest is kept`;
    case "capture_failed":
      return `cannot capture ${e.name}, trying again at the next change: ${e.error}`;
    case "touched":
      return `touched ${e.name} in ${e.store}: ${e.touched} of ${e.chunks} chunks written again ` +
        `(${(e.bytes / 1024).toFixed(1)} KiB)`;
    case "touch_failed":
      return `cannot touch ${e.name}'s chunks in ${e.store}: ${e.error}`;
    case "fatal":
      return `stopped replicating ${e.name}: ${e.error}`;
  }
}
