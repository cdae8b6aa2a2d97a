/**
 * One store's publish loop: it takes the pending images this store lacks, in order, and publishes each
 * (taking the store's lease first when the store was down at start). A failure waits, with backoff, for a
 * retry that a new image, a flush or close cuts short; each store keeps its own pace.
 *
 * @module
 */

import { errorMessage, TesseraError } from "../errors.ts";
import { backoffDelay, type RetryPolicy } from "../net/backoff.ts";
import { acquireLease, type LeaseHolder } from "../write/lease.ts";
import {
  PointerAheadError,
  type PublishResult,
  type PublishTarget,
  SpoolIncompleteError,
} from "../write/publish.ts";
import type { PendingImage, Spool } from "../write/spool.ts";
import type { BlobStore } from "../store/types.ts";
import type { TargetStatus } from "./control.ts";
import type { ReplicatorEvent, StatusBook } from "./status.ts";

/** Settings of {@linkcode PublishLoop}. */
export interface PublishLoopOptions {
  leaseTtlMs: number;
  takeOver: boolean | undefined;
  retry: RetryPolicy;
}

/** What {@linkcode PublishLoop} asks of the replicator. */
export interface PublishHost {
  readonly name: string;
  readonly holder: LeaseHolder;
  readonly spool: Spool;
  readonly book: StatusBook;
  readonly signal: AbortSignal;
  /** Every store's description: an image leaves the spool once all of them have it. */
  readonly stores: readonly string[];
  closed(): boolean;
  /** Runs a change of the spool after the ones before it. */
  locked<T>(fn: () => Promise<T>): Promise<T>;
  emit(event: ReplicatorEvent): void;
  requestCapture(full: boolean, force?: boolean): void;
  /** Later images get sequences above `sequence`. */
  skipPast(sequence: number): void;
  /** The loop has nothing to publish: it waits for a kick. */
  caughtUp(loop: PublishLoop): void;
  /** Stops replication (another writer has the database). */
  fatal(error: TesseraError): void;
}

/** Publishes the spool's pending images to one store until the replicator closes. */
export class PublishLoop {
  /** The store's side of publishing: its pointer as last read or written. */
  readonly target: PublishTarget;
  /** The store's part of the replicator's status, updated in place. */
  readonly status: TargetStatus;
  readonly #options: PublishLoopOptions;
  readonly #host: PublishHost;
  #inFlight: number | null = null;
  // The lease is taken in this store (a store down at start takes it before its first publish).
  #leased = false;
  #kick: () => void = () => {};
  #wake: Promise<void> = Promise.resolve();

  constructor(target: PublishTarget, status: TargetStatus, options: PublishLoopOptions, host: PublishHost) {
    this.target = target;
    this.status = status;
    this.#options = options;
    this.#host = host;
  }

  /** The store this loop publishes to. */
  get store(): BlobStore {
    return this.target.store;
  }

  /** The sequence being published now, if any. */
  get inFlight(): number | null {
    return this.#inFlight;
  }

  /** This replicator holds the store's lease. */
  get leased(): boolean {
    return this.#leased;
  }

  /** Wakes the loop: to publish a new image, or to retry at once. */
  kick(): void {
    this.#kick();
  }

  /** Takes the store's lease and reads its pointer. */
  async begin(): Promise<void> {
    await acquireLease(this.store, this.#host.name, this.#host.holder, {
      ttlMs: this.#options.leaseTtlMs,
      takeOver: this.#options.takeOver,
    });
    this.#leased = true;
    await this.target.init();
    this.status.sequence = this.target.sequence;
  }

  /** Counts a failure; the next try is due in `waitMs`. */
  noteFailure(error: unknown, waitMs: number): void {
    this.status.consecutiveFailures++;
    this.status.failures++;
    this.status.lastError = errorMessage(error);
    this.status.retryAtMs = Date.now() + waitMs;
  }

  /** Publishes until the replicator closes, or stops it on a fatal error. */
  async run(): Promise<void> {
    const host = this.#host;
    while (!host.closed()) {
      this.#wake = new Promise((resolve) => (this.#kick = resolve));
      const image = host.spool.pending().find((p) => !p.publishedTo.includes(this.status.store));
      if (!image) {
        host.caughtUp(this);
        await this.#wake;
        continue;
      }
      this.#inFlight = image.sequence;
      try {
        await this.#publish(image);
      } catch (error) {
        this.#inFlight = null;
        if (host.closed() && host.signal.aborted) return;
        // Before the CONFLICT check: a pointer ahead is a conflict this loop gets past.
        if (error instanceof PointerAheadError) {
          await this.#skipPast(error.sequence);
          continue;
        }
        if (error instanceof SpoolIncompleteError) await this.#recaptureWhole();
        if (error instanceof TesseraError && (error.code === "CONFLICT" || error.code === "LEASE_HELD")) {
          host.fatal(error);
          return;
        }
        await this.#retryLater(image, error);
      }
    }
  }

  async #publish(image: PendingImage): Promise<void> {
    const host = this.#host;
    if (!this.#leased) {
      await acquireLease(this.store, host.name, host.holder, {
        ttlMs: this.#options.leaseTtlMs,
        takeOver: this.#options.takeOver,
        signal: host.signal,
      });
      this.#leased = true;
    }
    const result = await this.target.publish(image, host.spool, host.signal);
    this.#inFlight = null;
    // The store's state first: once the image leaves the spool, status() and flush() must already
    // report the sequence it published.
    this.status.sequence = this.target.sequence;
    this.status.lastSuccessMs = Date.now();
    this.status.consecutiveFailures = 0;
    this.status.lastError = null;
    this.status.retryAtMs = null;
    await host.locked(() => host.spool.markPublished(image.sequence, this.status.store, host.stores));
    if (!result.already) host.book.published();
    // status.json says it before the event does: whoever reacts to the event reads the new status.
    host.book.refresh();
    await host.book.written();
    if (!result.already) this.#emitPublished(image, result);
  }

  #emitPublished(image: PendingImage, result: PublishResult): void {
    this.#host.emit({
      type: "published",
      name: this.#host.name,
      store: this.status.store,
      sequence: image.sequence,
      uploaded: result.uploaded,
      bytes: result.bytes,
    });
  }

  // Sequences move past the store's older pointer; the images below it are skipped for this store and a
  // new image (whatever the source says) carries the current state there.
  async #skipPast(past: number): Promise<void> {
    const host = this.#host;
    host.skipPast(past);
    await host.locked(async () => {
      for (const p of host.spool.pending()) {
        if (p.sequence <= past) await host.spool.markPublished(p.sequence, this.status.store, host.stores);
      }
    });
    this.status.sequence = past;
    host.requestCapture(false, true);
  }

  // The spool lacks a chunk this store lacks too: capture everything again, and publish that.
  async #recaptureWhole(): Promise<void> {
    const { spool } = this.#host;
    await this.#host.locked(async () => {
      for (const p of spool.pending()) await spool.drop(p.sequence);
      await spool.setCapture(undefined);
    });
    this.#host.requestCapture(true);
  }

  async #retryLater(image: PendingImage, error: unknown): Promise<void> {
    const wait = retryWait(this.status.consecutiveFailures, this.#options.retry);
    this.noteFailure(error, wait);
    this.#host.emit({
      type: "publish_failed",
      name: this.#host.name,
      store: this.status.store,
      sequence: image.sequence,
      error: errorMessage(error),
      retryInMs: wait,
    });
    this.#host.book.refresh();
    // A kick (new image, flush, close) cuts the wait short; the timer must not outlive it.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#wake, new Promise((resolve) => (timer = setTimeout(resolve, wait)))]);
    clearTimeout(timer);
  }
}

// Exponential backoff with the jitter in the upper half of each ceiling ("equal jitter"): a store that keeps
// failing waits at least half the ceiling, never a near-zero time that would retry it at once.
function retryWait(retry: number, policy: RetryPolicy): number {
  return backoffDelay(retry, policy, () => 0.5 + Math.random() / 2);
}
