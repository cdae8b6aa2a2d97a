/**
 * What a replicator does on timers besides capturing and publishing: renewing its leases, the periodic
 * check for changes that filesystem events missed, answering `tessera flush` requests, keeping `status.json`
 * fresh, and touching the chunks of each store's newest snapshot.
 *
 * @module
 */

import { errorMessage, TesseraError } from "../errors.ts";
import { touchChunks } from "../history/touch.ts";
import { type LeaseHolder, renewLease } from "../write/lease.ts";
import type { BlobStore } from "../store/types.ts";
import { answerFlush, pendingFlushRequests, sweepAnswers } from "./control.ts";
import type { ReplicatorEvent, StatusBook } from "./status.ts";

/** Settings of {@linkcode Chores}, in ms. */
export interface ChoreOptions {
  leaseTtlMs: number;
  pollIntervalMs: number;
  /** 0: never touch. */
  touchIntervalMs: number;
  touchOlderThanMs: number | undefined;
}

/** A store, and whether this replicator holds its lease (only those are renewed). */
export interface LeasedStore {
  readonly store: BlobStore;
  readonly leased: boolean;
}

/** What {@linkcode Chores} asks of the replicator. */
export interface ChoreHost {
  readonly name: string;
  readonly holder: LeaseHolder;
  readonly spoolDir: string;
  readonly book: StatusBook;
  readonly signal: AbortSignal;
  readonly stores: readonly LeasedStore[];
  closed(): boolean;
  emit(event: ReplicatorEvent): void;
  /** Stops replication (another writer took the lease). */
  fatal(error: TesseraError): void;
  /** Notices a change filesystem events missed. */
  poll(): Promise<void>;
  flush(): Promise<{ pending: number; sequence: number | null }>;
}

/** A replicator's periodic work; each chore skips its turn while its previous run is still going. */
export class Chores {
  readonly #options: ChoreOptions;
  readonly #host: ChoreHost;
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  #renewing: Promise<void> | undefined;
  #ticking = false;
  #touching = false;
  #servingFlush = new Set<string>();

  constructor(options: ChoreOptions, host: ChoreHost) {
    this.#options = options;
    this.#host = host;
  }

  /** Starts the timers; none keeps the process alive. */
  start(): void {
    const { leaseTtlMs, pollIntervalMs, touchIntervalMs } = this.#options;
    this.#timers.push(setInterval(() => {
      if (!this.#renewing) {
        this.#renewing = this.#renewLeases().finally(() => (this.#renewing = undefined));
      }
    }, Math.max(1000, Math.floor(leaseTtlMs / 3))));
    this.#timers.push(setInterval(() => this.#tick(), pollIntervalMs));
    if (touchIntervalMs > 0) this.#timers.push(setInterval(() => this.#touch(), touchIntervalMs));
    for (const timer of this.#timers) (timer as { unref?: () => void }).unref?.();
  }

  /** Stops the timers. */
  stop(): void {
    for (const timer of this.#timers) clearInterval(timer);
  }

  /** Resolves once no lease renewal is under way. */
  async settled(): Promise<void> {
    await this.#renewing?.catch(() => {});
  }

  async #renewLeases(): Promise<void> {
    const host = this.#host;
    if (host.closed()) return;
    for (const s of host.stores) {
      if (!s.leased) continue;
      try {
        await renewLease(s.store, host.name, host.holder, {
          ttlMs: this.#options.leaseTtlMs,
          signal: host.signal,
        });
      } catch (error) {
        if (error instanceof TesseraError && error.code === "LEASE_HELD") {
          host.fatal(error);
          return;
        }
        // An unreachable store: its publish loop reports it.
      }
    }
  }

  // Every poll interval: notice changes events missed, answer flush requests, keep status.json fresh.
  async #tick(): Promise<void> {
    if (this.#host.closed() || this.#ticking) return;
    this.#ticking = true;
    try {
      await this.#tickOnce();
    } finally {
      this.#ticking = false;
    }
  }

  async #tickOnce(): Promise<void> {
    const host = this.#host;
    await host.poll();
    const requests = await pendingFlushRequests(host.spoolDir);
    if (requests.length === 0 && this.#servingFlush.size === 0 && Math.random() < 0.01) {
      await sweepAnswers(host.spoolDir, 120_000);
    }
    for (const id of requests) {
      if (this.#servingFlush.has(id)) continue;
      // Served in the background, so polling and status.json go on while it waits.
      this.#servingFlush.add(id);
      const started = Date.now();
      void host.flush().then(
        (r) => ({ ok: r.pending === 0, ...r, ms: Date.now() - started }),
        (error) => ({ ok: false, error: errorMessage(error) }),
      ).then((answer) => answerFlush(host.spoolDir, id, answer)).catch(() => {}).finally(() => {
        this.#servingFlush.delete(id);
      });
    }
    host.book.refresh();
  }

  async #touch(): Promise<void> {
    const host = this.#host;
    if (host.closed() || this.#touching) return;
    this.#touching = true;
    try {
      for (const { store } of host.stores) {
        try {
          const report = await touchChunks(store, host.name, {
            olderThanMs: this.#options.touchOlderThanMs,
            signal: host.signal,
          });
          host.emit({
            type: "touched",
            name: host.name,
            store: store.description,
            chunks: report.chunks,
            touched: report.touched,
            bytes: report.bytes,
          });
        } catch (error) {
          if (host.closed()) return;
          host.emit({
            type: "touch_failed",
            name: host.name,
            store: store.description,
            error: errorMessage(error),
          });
        }
      }
    } finally {
      this.#touching = false;
    }
  }
}
