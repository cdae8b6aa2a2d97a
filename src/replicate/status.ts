/**
 * What a replicator reports: the events it emits as it works, and its status, which `status()` returns and
 * `status.json` in the spool directory holds for `tessera status`.
 *
 * @module
 */

import process from "node:process";
import type { Spool } from "../write/spool.ts";
import { type ReplicatorStatus, type TargetStatus, writeStatus } from "./control.ts";

/** What the replicator reports as it works. */
export type ReplicatorEvent =
  | { type: "captured"; name: string; sequence: number; read: number; spooled: number; heldMs: number }
  | { type: "published"; name: string; store: string; sequence: number; uploaded: number; bytes: number }
  | {
    type: "publish_failed";
    name: string;
    store: string;
    sequence: number;
    error: string;
    retryInMs: number;
  }
  | { type: "coalesced"; name: string; dropped: number[]; spoolBytes: number; maxSpoolBytes: number }
  | { type: "capture_failed"; name: string; error: string }
  | { type: "touched"; name: string; store: string; chunks: number; touched: number; bytes: number }
  | { type: "touch_failed"; name: string; store: string; error: string }
  | { type: "fatal"; name: string; error: string };

/** Which replicator a status describes. */
export interface StatusIdentity {
  name: string;
  path: string;
  hostname: string;
  writer: string;
  startedMs: number;
  maxSpoolBytes: number;
}

/**
 * A replicator's status as it changes: the counters the capture and publish loops keep, the figures read
 * from the spool whenever the status is asked for, and the background writes of `status.json`.
 */
export class StatusBook {
  readonly #spool: Spool;
  readonly #status: ReplicatorStatus;
  #write: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(spool: Spool, identity: StatusIdentity) {
    this.#spool = spool;
    this.#status = {
      name: identity.name,
      path: identity.path,
      pid: process.pid,
      hostname: identity.hostname,
      writer: identity.writer,
      running: true,
      startedMs: identity.startedMs,
      updatedMs: identity.startedMs,
      pending: 0,
      pendingBytes: 0,
      lastSync: null,
      lastCapture: null,
      lagMs: 0,
      captures: 0,
      published: 0,
      coalesced: 0,
      longestHoldMs: 0,
      maxSpoolBytes: identity.maxSpoolBytes,
      targets: [],
      error: null,
    };
  }

  /** Adds a store: its publish loop updates the returned status in place. */
  addTarget(store: string): TargetStatus {
    const target: TargetStatus = {
      store,
      sequence: 0,
      behind: 0,
      lastSuccessMs: null,
      consecutiveFailures: 0,
      failures: 0,
      lastError: null,
      retryAtMs: null,
    };
    this.#status.targets.push(target);
    return target;
  }

  /** The error that stopped replication, if one did. */
  get error(): string | null {
    return this.#status.error;
  }

  /** The newest image published to every store, as last computed. */
  get lastSync(): { sequence: number; ms: number } | null {
    return this.#status.lastSync;
  }

  /** Records replication's fatal error. */
  fail(message: string): void {
    this.#status.error = message;
  }

  /** Counts a capture that made an image. */
  captured(sequence: number, createdMs: number, heldMs: number): void {
    this.#status.captures++;
    this.#status.lastCapture = { sequence, ms: createdMs };
    this.#status.longestHoldMs = Math.max(this.#status.longestHoldMs, Math.round(heldMs));
  }

  /** Counts images dropped unpublished. */
  coalesced(count: number): void {
    this.#status.coalesced += count;
  }

  /** Counts an image a store received. */
  published(): void {
    this.#status.published++;
  }

  /** The current status, a copy. */
  snapshot(): ReplicatorStatus {
    this.#fill();
    return structuredClone(this.#status);
  }

  /** Brings the status up to date and writes `status.json` in the background (writes keep their order). */
  refresh(): void {
    if (this.#stopped) return;
    this.#fill();
    const status = structuredClone(this.#status);
    this.#write = this.#write.then(() => writeStatus(this.#spool.dir, status)).catch(() => {});
  }

  /** Resolves once every write started so far is done. */
  written(): Promise<void> {
    return this.#write;
  }

  /** Writes the last status, `running: false`; later refreshes write nothing. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#write;
    this.#status.running = false;
    this.#fill();
    await writeStatus(this.#spool.dir, this.#status).catch(() => {});
  }

  #fill(): void {
    const pending = this.#spool.pending();
    const status = this.#status;
    status.pending = pending.length;
    status.pendingBytes = this.#spool.bytes;
    status.updatedMs = Date.now();
    status.lagMs = pending.length > 0 ? Math.max(0, Date.now() - (pending[0]?.createdMs ?? Date.now())) : 0;
    for (const t of status.targets) {
      t.behind = pending.filter((p) => !p.publishedTo.includes(t.store)).length;
    }
    const everywhere = Math.min(...status.targets.map((t) => t.sequence));
    const lastMs = Math.min(...status.targets.map((t) => t.lastSuccessMs ?? 0));
    if (everywhere > 0 && (status.lastSync?.sequence ?? 0) < everywhere) {
      status.lastSync = { sequence: everywhere, ms: lastMs || Date.now() };
    }
  }
}
