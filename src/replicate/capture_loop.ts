/**
 * The replicator's captures: one at a time, each a consistent image of the source put into the spool as a
 * pending image; requests that arrive during a capture make one more after it. The spool is kept within its
 * bound by dropping older pending images (only the newest matters for the pointer).
 *
 * @module
 */

import { errorMessage, TesseraError } from "../errors.ts";
import { manifestKey } from "../manifest/keys.ts";
import { captureImage } from "../write/capture.ts";
import type { PublishTarget } from "../write/publish.ts";
import { SourceReader } from "../write/source.ts";
import type { Spool } from "../write/spool.ts";
import type { ReplicatorEvent, StatusBook } from "./status.ts";
import type { SourceWatch } from "./watch.ts";

/** Settings of {@linkcode CaptureLoop}. */
export interface CaptureLoopOptions {
  chunkSize: number;
  /** The host name in the manifest's identity ("" when the database has a chosen name). */
  manifestHostname: string;
  maxSpoolBytes: number;
  busyTimeoutMs: number | undefined;
}

/** What {@linkcode CaptureLoop} asks of the replicator. */
export interface CaptureHost {
  readonly name: string;
  readonly spool: Spool;
  readonly book: StatusBook;
  readonly signal: AbortSignal;
  readonly watch: Pick<SourceWatch, "statKey" | "captured" | "captureFailed">;
  closed(): boolean;
  /** Runs a change of the spool after the ones before it. */
  locked<T>(fn: () => Promise<T>): Promise<T>;
  emit(event: ReplicatorEvent): void;
  /** The sequences publish loops are sending now: coalescing keeps them. */
  inFlight(): (number | null)[];
  /** A new image is pending: wakes every publish loop. */
  kick(): void;
}

/** Captures the source into the spool, one capture at a time. */
export class CaptureLoop {
  readonly #path: string;
  readonly #options: CaptureLoopOptions;
  readonly #host: CaptureHost;
  // Reads each capture in a reader process of its own (see SourceReader).
  readonly #reader: SourceReader;
  #running: Promise<void> | undefined;
  #again = false;
  #full = false;
  // A capture that makes an image even when the source has not changed (a store needs one).
  #force = false;
  // A store needs a new image that no capture has made yet (flush waits for it).
  #owed = false;
  // Captures started, and the last one finished with its error (null: it succeeded).
  #started = 0;
  #lastFinished: { id: number; error: string | null } = { id: 0, error: null };
  #waiters: (() => void)[] = [];
  #nextSequence = 1;

  constructor(path: string, options: CaptureLoopOptions, host: CaptureHost) {
    this.#path = path;
    this.#options = options;
    this.#host = host;
    this.#reader = new SourceReader(path, { busyTimeoutMs: options.busyTimeoutMs });
  }

  /** A capture is running. */
  get busy(): boolean {
    return this.#running !== undefined;
  }

  /** A store waits for an image no capture has made yet. */
  get owed(): boolean {
    return this.#owed;
  }

  /** How many captures have started. */
  get started(): number {
    return this.#started;
  }

  /** Later images get sequences above `sequence`. */
  skipPast(sequence: number): void {
    this.#nextSequence = Math.max(this.#nextSequence, sequence + 1);
  }

  /**
   * Chooses the first sequence: one past every pointer, every pending image and the spool's last capture;
   * past any manifest a crashed publish left ahead of a pointer too (a store that cannot answer counts as
   * holding none).
   */
  async chooseFirstSequence(targets: readonly PublishTarget[]): Promise<void> {
    const { name, spool } = this.#host;
    let sequence = 1 + Math.max(
      0,
      spool.capture?.sequence ?? 0,
      ...spool.pending().map((p) => p.sequence),
      ...targets.map((t) => t.sequence),
    );
    for (let i = 0; i < 1000; i++) {
      const heads = await Promise.all(
        targets.map((t) =>
          t.store.head(manifestKey(name, sequence)).catch(() => ({
            status: "not_found" as const,
          }))
        ),
      );
      if (heads.every((h) => h.status === "not_found")) {
        this.skipPast(sequence - 1);
        return;
      }
      sequence++;
    }
    throw new TesseraError(
      "CONFLICT",
      `Cannot choose a sequence for "${name}": 1000 manifests lie ahead`,
    );
  }

  /**
   * Captures soon: at once, or right after the running capture. `full` reads every chunk again; `force`
   * makes an image even when the source has not changed.
   */
  request(full: boolean, force = false): void {
    if (full) this.#full = true;
    if (force) {
      this.#force = true;
      this.#owed = true;
    }
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
  }

  /**
   * Waits (until `deadline`) for capture `want` or a later one to finish; false when the deadline came
   * first. Throws `SOURCE_UNREADABLE` when that capture failed.
   */
  async waitFor(want: number, deadline: number): Promise<boolean> {
    while (this.#lastFinished.id < want) {
      if (this.#host.closed() && !this.#running) return false;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, 1000));
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#waiters.push(done);
      });
    }
    if (this.#lastFinished.error !== null) {
      throw new TesseraError(
        "SOURCE_UNREADABLE",
        `Cannot flush "${this.#host.name}": capturing ${this.#path} failed: ${this.#lastFinished.error}`,
      );
    }
    return true;
  }

  /** Waits for the running capture, then stops the reader process. */
  async close(): Promise<void> {
    await this.#running?.catch(() => {});
    this.#reader.close();
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      await this.#once();
    } while (this.#again && !this.#host.closed());
  }

  async #once(): Promise<void> {
    const host = this.#host;
    const full = this.#full;
    const force = this.#force;
    this.#full = false;
    this.#force = false;
    const id = ++this.#started;
    let failure: string | null = null;
    const statKey = await host.watch.statKey();
    try {
      const result = await host.locked(() =>
        captureImage(this.#path, host.spool, {
          chunkSize: this.#options.chunkSize,
          hostname: this.#options.manifestHostname,
          nextSequence: this.#nextSequence,
          full,
          force,
          reader: this.#reader,
          signal: host.signal,
        })
      );
      host.watch.captured(statKey);
      if (result.image) {
        this.#owed = false;
        this.#nextSequence = result.image.sequence + 1;
        host.book.captured(result.image.sequence, result.image.createdMs, result.heldMs);
        host.emit({
          type: "captured",
          name: host.name,
          sequence: result.image.sequence,
          read: result.read,
          spooled: result.spooled,
          heldMs: Math.round(result.heldMs),
        });
        await this.#coalesce();
        host.kick();
      }
    } catch (error) {
      if (full) this.#full = true;
      if (force) this.#force = true;
      failure = errorMessage(error);
      host.watch.captureFailed(statKey);
      host.emit({ type: "capture_failed", name: host.name, error: failure });
    }
    this.#lastFinished = { id, error: failure };
    for (const waiter of this.#waiters.splice(0)) waiter();
    host.book.refresh();
  }

  // Drops the oldest pending images (never the newest, never one being published) while the spool is
  // over its bound.
  async #coalesce(): Promise<void> {
    const { spool } = this.#host;
    const max = this.#options.maxSpoolBytes;
    if (spool.bytes <= max) return;
    const dropped: number[] = [];
    await this.#host.locked(async () => {
      const pending = spool.pending();
      const busy = new Set(this.#host.inFlight());
      for (const image of pending.slice(0, -1)) {
        if (spool.bytes <= max) break;
        if (busy.has(image.sequence)) continue;
        await spool.drop(image.sequence);
        dropped.push(image.sequence);
      }
    });
    if (dropped.length > 0) {
      this.#host.book.coalesced(dropped.length);
      this.#host.emit({
        type: "coalesced",
        name: this.#host.name,
        dropped,
        spoolBytes: spool.bytes,
        maxSpoolBytes: max,
      });
    }
  }
}
