/**
 * How a running replicator and the `tessera status` / `tessera flush` commands meet: files in the
 * database's spool directory.
 * - `owner.json`: the process replicating this database from this spool (one at a time);
 * - `status.json`: its status, rewritten as it changes and at least every second while it runs;
 * - `control/flush-<id>`: a request to publish now; the replicator answers with `control/flush-<id>.done`.
 *
 * @module
 */

import { randomUUID } from "node:crypto";
import { mkdir, readdir, readFile, rm, stat, unlink } from "node:fs/promises";
import { hostname as osHostname } from "node:os";
import { join } from "node:path";
import { TesseraError } from "../errors.ts";
import { writeFileAtomic } from "../files.ts";
import { alive } from "../write/spool.ts";

/** One store's side of a replicator's status. */
export interface TargetStatus {
  store: string;
  /** The sequence its pointer names, as last published or read. */
  sequence: number;
  /** Pending images this store has not received yet. */
  behind: number;
  lastSuccessMs: number | null;
  /** Failures since the last success. */
  consecutiveFailures: number;
  failures: number;
  lastError: string | null;
  /** When the next try is due after a failure. */
  retryAtMs: number | null;
}

/** What a replicator reports about one database. */
export interface ReplicatorStatus {
  name: string;
  path: string;
  pid: number;
  hostname: string;
  writer: string;
  running: boolean;
  startedMs: number;
  updatedMs: number;
  /** Images captured but not yet published to every store, and the spool's bytes. */
  pending: number;
  pendingBytes: number;
  /** The newest image published to every store. */
  lastSync: { sequence: number; ms: number } | null;
  /** The last capture. */
  lastCapture: { sequence: number; ms: number } | null;
  /** Milliseconds since the oldest image not yet in every store was captured (0: none waiting). */
  lagMs: number;
  captures: number;
  published: number;
  /** Intermediate images dropped unpublished because the spool reached its bound. */
  coalesced: number;
  /** The longest time a capture held the source's read transaction, in milliseconds. */
  longestHoldMs: number;
  maxSpoolBytes: number;
  targets: TargetStatus[];
  /** A fatal error that stopped this database's replication (another writer, say). */
  error: string | null;
}

/** The directory holding `control/` requests. */
function controlDir(spoolDir: string): string {
  return join(spoolDir, "control");
}

/** Writes a replicator's status. */
export async function writeStatus(dir: string, status: ReplicatorStatus): Promise<void> {
  await writeFileAtomic(join(dir, "status.json"), new TextEncoder().encode(JSON.stringify(status)));
}

/**
 * Reads the status a replicator left in `dir`. `running` is true only while its process lives and it
 * updated the file in the last 5 seconds.
 */
export async function readStatus(dir: string): Promise<ReplicatorStatus | undefined> {
  let status: ReplicatorStatus;
  try {
    status = JSON.parse(await readFile(join(dir, "status.json"), "utf8"));
  } catch {
    return undefined;
  }
  const fresh = Date.now() - status.updatedMs < 5000;
  status.running = status.running && fresh && (status.hostname !== osHostname() || alive(status.pid));
  return status;
}

/** Flush requests waiting in `dir`, by id. */
export async function pendingFlushRequests(dir: string): Promise<string[]> {
  try {
    return (await readdir(controlDir(dir))).filter((f) => /^flush-[0-9a-f-]+$/.test(f)).map((f) =>
      f.slice(6)
    );
  } catch {
    return [];
  }
}

/** Removes answers nobody collected (the asker gave up) once they are `olderThanMs` old. */
export async function sweepAnswers(dir: string, olderThanMs: number): Promise<void> {
  let files: string[];
  try {
    files = (await readdir(controlDir(dir))).filter((f) => f.endsWith(".done"));
  } catch {
    return;
  }
  for (const file of files) {
    const path = join(controlDir(dir), file);
    const info = await stat(path).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > olderThanMs) await unlink(path).catch(() => {});
  }
}

/** Answers flush request `id`. */
export async function answerFlush(dir: string, id: string, answer: object): Promise<void> {
  await writeFileAtomic(
    join(controlDir(dir), `flush-${id}.done`),
    new TextEncoder().encode(JSON.stringify(answer)),
  );
  await unlink(join(controlDir(dir), `flush-${id}`)).catch(() => {});
}

/**
 * Asks the replicator using `dir` to publish now, and waits for its answer (up to `timeoutMs`).
 * Resolves with the answer; throws `STALE` when no answer came in time.
 */
export async function requestFlush(dir: string, timeoutMs: number): Promise<Record<string, unknown>> {
  const id = randomUUID();
  await mkdir(controlDir(dir), { recursive: true, mode: 0o700 });
  const request = join(controlDir(dir), `flush-${id}`);
  const done = `${request}.done`;
  await writeFileAtomic(request, new TextEncoder().encode(JSON.stringify({ requestedMs: Date.now() })));
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      try {
        const answer = JSON.parse(await readFile(done, "utf8"));
        await rm(done, { force: true });
        return answer;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    await rm(request, { force: true });
  }
  throw new TesseraError(
    "STALE",
    `No replicator answered the flush request in ${dir} within ${Math.round(timeoutMs / 1000)} s`,
  );
}
