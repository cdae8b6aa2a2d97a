/**
 * The replicator: keeps one database published to every writable store while the application writes.
 * It notices commits (filesystem events, with a polling fallback), waits for a quiet moment, captures a
 * consistent image into the spool, and publishes spooled images in order to each store on its own, with
 * retries and backoff. A store outage or a crash loses nothing it had captured; the spool's size is
 * bounded by dropping older unpublished images (only the newest matters for the pointer).
 *
 * @module
 */

import { type FSWatcher, watch as watchFs } from "node:fs";
import { stat } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import process from "node:process";
import { TesseraError } from "../errors.ts";
import { touchChunks } from "../history/touch.ts";
import { manifestKey } from "../manifest/keys.ts";
import { checkChosenName, deriveName } from "../manifest/naming.ts";
import { SourceReader } from "../snapshot/source.ts";
import { defaultSpoolDir } from "../snapshot/sync.ts";
import type { BlobStore } from "../store/types.ts";
import { captureImage } from "./capture.ts";
import {
  answerFlush,
  claimOwner,
  pendingFlushRequests,
  type ReplicatorStatus,
  sweepAnswers,
  type TargetStatus,
  writeStatus,
} from "./control.ts";
import { acquireLease, type LeaseHolder, releaseLease, renewLease } from "./lease.ts";
import { PointerAheadError, PublishTarget, SpoolIncompleteError } from "./publish.ts";
import { Spool } from "./spool.ts";

/** Options of {@linkcode Replicator.start}. */
export interface ReplicatorOptions {
  /** Writable stores; every one receives every image. */
  stores: BlobStore[];
  /** The host name that, with the absolute path, names the database. */
  hostname: string;
  /** A chosen name instead of the derived one. */
  name?: string | undefined;
  /** @default {65536} */
  chunkSize?: number | undefined;
  /** @default {`<tmpdir>/tessera-spool-<uid>`} */
  spoolDir?: string | undefined;
  /** Quiet time after a change before capturing, in ms. @default {100} */
  debounceMs?: number | undefined;
  /** Longest wait after a change while changes keep coming, in ms. @default {1000} */
  maxDelayMs?: number | undefined;
  /** How often the file's size and time are checked, whatever the filesystem events say, in ms. @default {500} */
  pollIntervalMs?: number | undefined;
  /** Use filesystem events. @default {true} */
  watch?: boolean | undefined;
  /** Spool size beyond which older unpublished images are dropped. @default {256 MiB} */
  maxSpoolBytes?: number | undefined;
  /** Backoff after a failed publish: the first ceiling and the largest wait, in ms. */
  retryBaseMs?: number | undefined;
  retryMaxMs?: number | undefined;
  /** How long the lease lasts without renewal, in ms. @default {60000} */
  leaseTtlMs?: number | undefined;
  /** Take the lease even when another replicator holds it. */
  takeOver?: boolean | undefined;
  /** How long to wait for the source's write lock when capturing, in ms. @default {10000} */
  busyTimeoutMs?: number | undefined;
  /**
   * Every this many ms, write again the chunks of each store's newest snapshot that the store wrote more
   * than `touchOlderThanMs` ago, so buckets whose lifecycle rules expire old objects keep live chunks.
   * @default {0: never}
   */
  touchIntervalMs?: number | undefined;
  /** @default {1 day} */
  touchOlderThanMs?: number | undefined;
  /** Called with each thing worth logging. */
  onEvent?: ((event: ReplicatorEvent) => void) | undefined;
}

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

// How often a Deno replicator checks the source for changes in place of filesystem events (well under the
// default debounce, so a quiet moment can be seen).
const DENO_WATCH_POLL_MS = 50;
// How often polling tries again a source whose capture failed, while the source looks the same.
const CAPTURE_RETRY_MS = 2000;

const DEFAULTS = {
  debounceMs: 100,
  maxDelayMs: 1000,
  pollIntervalMs: 500,
  maxSpoolBytes: 256 * 1024 * 1024,
  retryBaseMs: 250,
  retryMaxMs: 30_000,
  leaseTtlMs: 60_000,
};

interface TargetState {
  target: PublishTarget;
  status: TargetStatus;
  kick: () => void;
  wake: Promise<void>;
  inFlight: number | null;
  /** The lease is taken in this store (a store down at start takes it before its first publish). */
  leased: boolean;
}

/**
 * Replicates one database until closed.
 *
 * @example
 * ```ts ignore
 * import { LocalStore } from "../store/local.ts";
 * import { Replicator } from "./replicator.ts";
 * const replicator = await Replicator.start("app.db", { stores: [new LocalStore("backups")], hostname: "db1" });
 * // ... the application writes ...
 * await replicator.flush();
 * await replicator.close();
 * ```
 */
export class Replicator {
  readonly path: string;
  readonly name: string;
  readonly #options: ReplicatorOptions;
  readonly #spool: Spool;
  readonly #holder: LeaseHolder;
  readonly #targets: TargetState[];
  readonly #releaseOwner: () => Promise<void>;
  readonly #abort = new AbortController();
  readonly #status: ReplicatorStatus;
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  #watcher: FSWatcher | undefined;
  // Reads each capture in a reader process of its own (see SourceReader).
  readonly #reader: SourceReader;
  #lastStat = "";
  #changedAt = 0;
  #lastChangeAt = 0;
  #captureTimer: ReturnType<typeof setTimeout> | undefined;
  #capturing: Promise<void> | undefined;
  #captureAgain = false;
  #fullCapture = false;
  // A capture that makes an image even when the source has not changed (a store needs one).
  #forceCapture = false;
  // A store needs a new image that no capture has made yet (flush waits for it).
  #owedImage = false;
  // Captures started, and the last one finished with its error (null: it succeeded).
  #capturesStarted = 0;
  #lastFinished: { id: number; error: string | null } = { id: 0, error: null };
  #captureWaiters: (() => void)[] = [];
  #renewing: Promise<void> | undefined;
  #servingFlush = new Set<string>();
  #lock: Promise<unknown> = Promise.resolve();
  #closed = false;
  #loops: Promise<void>[] = [];
  #nextSequence = 1;
  #statusWrite: Promise<void> = Promise.resolve();
  #shutDown = false;
  #ticking = false;
  #idle: (() => void)[] = [];

  private constructor(
    path: string,
    name: string,
    options: ReplicatorOptions,
    spool: Spool,
    holder: LeaseHolder,
    releaseOwner: () => Promise<void>,
  ) {
    this.path = path;
    this.name = name;
    this.#options = options;
    this.#spool = spool;
    this.#holder = holder;
    this.#releaseOwner = releaseOwner;
    this.#reader = new SourceReader(path, { busyTimeoutMs: options.busyTimeoutMs });
    const now = Date.now();
    this.#status = {
      name,
      path,
      pid: process.pid,
      hostname: options.hostname,
      writer: holder.writer,
      running: true,
      startedMs: now,
      updatedMs: now,
      pending: 0,
      pendingBytes: 0,
      lastSync: null,
      lastCapture: null,
      lagMs: 0,
      captures: 0,
      published: 0,
      coalesced: 0,
      longestHoldMs: 0,
      maxSpoolBytes: options.maxSpoolBytes ?? DEFAULTS.maxSpoolBytes,
      targets: [],
      error: null,
    };
    this.#targets = options.stores.map((store) => {
      const state: TargetState = {
        target: new PublishTarget(store, name, holder.writer, now),
        status: {
          store: store.description,
          sequence: 0,
          behind: 0,
          lastSuccessMs: null,
          consecutiveFailures: 0,
          failures: 0,
          lastError: null,
          retryAtMs: null,
        },
        kick: () => {},
        wake: Promise.resolve(),
        inFlight: null,
        leased: false,
      };
      this.#status.targets.push(state.status);
      return state;
    });
  }

  /**
   * Starts replicating the database at `path`: claims the spool and every store's lease, reads each
   * store's pointer, publishes what a previous run left in the spool, captures the current state, and
   * keeps going until {@linkcode close}. Throws `LEASE_HELD` when another replicator has the database.
   */
  static async start(path: string, options: ReplicatorOptions): Promise<Replicator> {
    const { stores } = options;
    if (stores.length === 0) throw new TypeError("Cannot replicate: give at least one store");
    for (const store of stores) {
      if (!store.capabilities.write) {
        throw new TesseraError(
          "READONLY",
          `Cannot replicate to ${store.description}: the store is read-only`,
        );
      }
    }
    const file = resolve(path);
    let name: string;
    if (options.name !== undefined) {
      checkChosenName(options.name);
      name = options.name;
    } else name = await deriveName(options.hostname, file);
    const spool = await Spool.open(options.spoolDir ?? defaultSpoolDir(), name);
    const releaseOwner = await claimOwner(spool.dir, file);
    let replicator: Replicator | undefined;
    try {
      const writer = await spool.writerId(options.hostname);
      const holder: LeaseHolder = { writer, hostname: options.hostname, pid: process.pid, path: file };
      replicator = new Replicator(file, name, options, spool, holder, releaseOwner);
      await replicator.#begin();
      return replicator;
    } catch (error) {
      if (replicator) await replicator.#shutdown();
      else await releaseOwner();
      throw error;
    }
  }

  async #begin(): Promise<void> {
    const ttlMs = this.#options.leaseTtlMs ?? DEFAULTS.leaseTtlMs;
    // Every reachable store's lease: a store that is down now is checked when it comes back (its pointer
    // check catches another writer).
    const results = await Promise.allSettled(this.#targets.map(async (t) => {
      await acquireLease(t.target.store, this.name, this.#holder, {
        ttlMs,
        takeOver: this.#options.takeOver,
      });
      t.leased = true;
      await t.target.init();
      t.status.sequence = t.target.sequence;
    }));
    for (const [i, result] of results.entries()) {
      if (result.status === "rejected") {
        const error = result.reason;
        if (error instanceof TesseraError && (error.code === "LEASE_HELD" || error.code === "CONFLICT")) {
          throw error;
        }
        this.#noteFailure(this.#targets[i] as TargetState, error, 0);
      }
    }
    this.#nextSequence = await this.#firstSequence();
    this.#timers.push(setInterval(() => {
      if (!this.#renewing) {
        this.#renewing = this.#renewLeases(ttlMs).finally(() => (this.#renewing = undefined));
      }
    }, Math.max(1000, Math.floor(ttlMs / 3))));
    this.#timers.push(
      setInterval(() => this.#tick(), this.#options.pollIntervalMs ?? DEFAULTS.pollIntervalMs),
    );
    const touchEvery = this.#options.touchIntervalMs ?? 0;
    if (touchEvery > 0) this.#timers.push(setInterval(() => this.#touch(), touchEvery));
    for (const timer of this.#timers) (timer as { unref?: () => void }).unref?.();
    if (this.#options.watch ?? true) this.#startWatching();
    for (const t of this.#targets) this.#loops.push(this.#publishLoop(t));
    this.#refreshStatus();
    this.#requestCapture(false, this.#storeNeedsImage());
  }

  // A reachable store's pointer is behind the last capture and no pending image is due for it: it was
  // added, or emptied, while the database was idle. It needs a new image, whatever the source says.
  #storeNeedsImage(): boolean {
    const captured = this.#spool.capture?.sequence ?? 0;
    const pending = this.#spool.pending();
    return this.#targets.some((t) =>
      t.target.ready && t.target.sequence < captured &&
      !pending.some((p) => !p.publishedTo.includes(t.status.store))
    );
  }

  // One past every pointer, every pending image and the spool's last capture; past any manifest a crashed
  // publish left ahead of a pointer too.
  async #firstSequence(): Promise<number> {
    let sequence = 1 + Math.max(
      0,
      this.#spool.capture?.sequence ?? 0,
      ...this.#spool.pending().map((p) => p.sequence),
      ...this.#targets.map((t) => t.target.sequence),
    );
    for (let i = 0; i < 1000; i++) {
      const heads = await Promise.all(
        this.#targets.map((t) =>
          t.target.store.head(manifestKey(this.name, sequence)).catch(() => ({
            status: "not_found" as const,
          }))
        ),
      );
      if (heads.every((h) => h.status === "not_found")) return sequence;
      sequence++;
    }
    throw new TesseraError(
      "CONFLICT",
      `Cannot choose a sequence for "${this.name}": 1000 manifests lie ahead`,
    );
  }

  /** A commit may have happened: capture soon (debounced). */
  notify(): void {
    if (this.#closed) return;
    const now = Date.now();
    if (this.#changedAt === 0) this.#changedAt = now;
    this.#lastChangeAt = now;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#captureTimer !== undefined) clearTimeout(this.#captureTimer);
    const debounce = this.#options.debounceMs ?? DEFAULTS.debounceMs;
    const maxDelay = this.#options.maxDelayMs ?? DEFAULTS.maxDelayMs;
    const due = Math.min(this.#lastChangeAt + debounce, this.#changedAt + maxDelay);
    this.#captureTimer = setTimeout(() => {
      this.#captureTimer = undefined;
      this.#requestCapture(false);
    }, Math.max(0, due - Date.now()));
  }

  #requestCapture(full: boolean, force = false): void {
    if (full) this.#fullCapture = true;
    if (force) {
      this.#forceCapture = true;
      this.#owedImage = true;
    }
    this.#changedAt = 0;
    if (this.#capturing) {
      this.#captureAgain = true;
      return;
    }
    this.#capturing = this.#captureLoop().finally(() => {
      this.#capturing = undefined;
    });
  }

  async #captureLoop(): Promise<void> {
    do {
      this.#captureAgain = false;
      await this.#captureOnce();
    } while (this.#captureAgain && !this.#closed);
  }

  async #captureOnce(): Promise<void> {
    const full = this.#fullCapture;
    const force = this.#forceCapture;
    this.#fullCapture = false;
    this.#forceCapture = false;
    const id = ++this.#capturesStarted;
    let failure: string | null = null;
    const statKey = await this.#statKey();
    try {
      const result = await this.#locked(() =>
        captureImage(this.path, this.#spool, {
          chunkSize: this.#options.chunkSize ?? 65536,
          hostname: this.#options.name ? "" : this.#options.hostname,
          nextSequence: this.#nextSequence,
          full,
          force,
          reader: this.#reader,
          signal: this.#abort.signal,
        })
      );
      this.#lastStat = statKey;
      this.#failedStat = undefined;
      if (result.image) {
        this.#owedImage = false;
        this.#nextSequence = result.image.sequence + 1;
        this.#status.captures++;
        this.#status.lastCapture = { sequence: result.image.sequence, ms: result.image.createdMs };
        this.#status.longestHoldMs = Math.max(this.#status.longestHoldMs, Math.round(result.heldMs));
        this.#emit({
          type: "captured",
          name: this.name,
          sequence: result.image.sequence,
          read: result.read,
          spooled: result.spooled,
          heldMs: Math.round(result.heldMs),
        });
        await this.#coalesce();
        for (const t of this.#targets) t.kick();
      }
    } catch (error) {
      if (full) this.#fullCapture = true;
      if (force) this.#forceCapture = true;
      failure = message(error);
      this.#failedStat = { key: statKey, ms: Date.now() };
      this.#emit({ type: "capture_failed", name: this.name, error: failure });
    }
    this.#lastFinished = { id, error: failure };
    for (const waiter of this.#captureWaiters.splice(0)) waiter();
    this.#refreshStatus();
  }

  /**
   * Captures now: resolves once a capture that started after this call has finished (however long the
   * source's lock takes), and rejects with `SOURCE_UNREADABLE` when that capture failed.
   */
  async captureNow(): Promise<void> {
    await this.#captureAfter(this.#capturesStarted + 1, Infinity);
  }

  // Requests a capture and waits (until `deadline`) for capture `want` or a later one to finish; false when
  // the deadline came first.
  async #captureAfter(want: number, deadline: number): Promise<boolean> {
    if (this.#captureTimer !== undefined) clearTimeout(this.#captureTimer);
    this.#captureTimer = undefined;
    this.#requestCapture(false);
    while (this.#lastFinished.id < want) {
      if (this.#closed && !this.#capturing) return false;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, 1000));
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#captureWaiters.push(done);
      });
    }
    if (this.#lastFinished.error !== null) {
      throw new TesseraError(
        "SOURCE_UNREADABLE",
        `Cannot flush "${this.name}": capturing ${this.path} failed: ${this.#lastFinished.error}`,
      );
    }
    return true;
  }

  // Drops the oldest pending images (never the newest, never one being published) while the spool is
  // over its bound.
  async #coalesce(): Promise<void> {
    const max = this.#options.maxSpoolBytes ?? DEFAULTS.maxSpoolBytes;
    if (this.#spool.bytes <= max) return;
    const dropped: number[] = [];
    await this.#locked(async () => {
      const pending = this.#spool.pending();
      const busy = new Set(this.#targets.map((t) => t.inFlight));
      for (const image of pending.slice(0, -1)) {
        if (this.#spool.bytes <= max) break;
        if (busy.has(image.sequence)) continue;
        await this.#spool.drop(image.sequence);
        dropped.push(image.sequence);
      }
    });
    if (dropped.length > 0) {
      this.#status.coalesced += dropped.length;
      this.#emit({
        type: "coalesced",
        name: this.name,
        dropped,
        spoolBytes: this.#spool.bytes,
        maxSpoolBytes: max,
      });
    }
  }

  async #publishLoop(t: TargetState): Promise<void> {
    const signal = this.#abort.signal;
    const stores = this.#targets.map((x) => x.target.store.description);
    while (!this.#closed) {
      t.wake = new Promise((resolve) => (t.kick = resolve));
      const image = this.#spool.pending().find((p) => !p.publishedTo.includes(t.status.store));
      if (!image) {
        if (t.target.ready && this.#storeNeedsImage() && !this.#capturing) this.#requestCapture(false, true);
        this.#refreshStatus();
        this.#notifyIdle();
        await t.wake;
        continue;
      }
      t.inFlight = image.sequence;
      try {
        if (!t.leased) {
          await acquireLease(t.target.store, this.name, this.#holder, {
            ttlMs: this.#options.leaseTtlMs ?? DEFAULTS.leaseTtlMs,
            takeOver: this.#options.takeOver,
            signal,
          });
          t.leased = true;
        }
        const result = await t.target.publish(image, this.#spool, signal);
        t.inFlight = null;
        // The store's state first: once the image leaves the spool, status() and flush() must already
        // report the sequence it published.
        t.status.sequence = t.target.sequence;
        t.status.lastSuccessMs = Date.now();
        t.status.consecutiveFailures = 0;
        t.status.lastError = null;
        t.status.retryAtMs = null;
        await this.#locked(() => this.#spool.markPublished(image.sequence, t.status.store, stores));
        if (!result.already) this.#status.published++;
        // status.json says it before the event does: whoever reacts to the event reads the new status.
        this.#refreshStatus();
        await this.#statusWrite;
        if (!result.already) {
          this.#emit({
            type: "published",
            name: this.name,
            store: t.status.store,
            sequence: image.sequence,
            uploaded: result.uploaded,
            bytes: result.bytes,
          });
        }
      } catch (error) {
        t.inFlight = null;
        if (this.#closed && signal.aborted) return;
        if (error instanceof PointerAheadError) {
          // Sequences move past the store's older pointer; the images below it are skipped for this store
          // and a new image (whatever the source says) carries the current state there.
          const past = error.sequence;
          this.#nextSequence = Math.max(this.#nextSequence, past + 1);
          await this.#locked(async () => {
            for (const p of this.#spool.pending()) {
              if (p.sequence <= past) await this.#spool.markPublished(p.sequence, t.status.store, stores);
            }
          });
          t.status.sequence = past;
          this.#requestCapture(false, true);
          continue;
        }
        if (error instanceof SpoolIncompleteError) {
          // The spool lacks a chunk this store lacks too: capture everything again, and publish that.
          await this.#locked(async () => {
            for (const p of this.#spool.pending()) await this.#spool.drop(p.sequence);
            await this.#spool.setCapture(undefined);
          });
          this.#requestCapture(true);
        }
        if (error instanceof TesseraError && (error.code === "CONFLICT" || error.code === "LEASE_HELD")) {
          this.#fatal(error);
          return;
        }
        const retry = t.status.consecutiveFailures;
        const ceiling = Math.min(
          this.#options.retryMaxMs ?? DEFAULTS.retryMaxMs,
          (this.#options.retryBaseMs ?? DEFAULTS.retryBaseMs) * 2 ** Math.min(retry, 20),
        );
        const wait = Math.floor(ceiling / 2 + Math.random() * ceiling / 2);
        this.#noteFailure(t, error, wait);
        this.#emit({
          type: "publish_failed",
          name: this.name,
          store: t.status.store,
          sequence: image.sequence,
          error: message(error),
          retryInMs: wait,
        });
        this.#refreshStatus();
        // A kick (new image, flush, close) cuts the wait short; the timer must not outlive it.
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([t.wake, new Promise((resolve) => (timer = setTimeout(resolve, wait)))]);
        clearTimeout(timer);
      }
    }
  }

  #noteFailure(t: TargetState, error: unknown, waitMs: number): void {
    t.status.consecutiveFailures++;
    t.status.failures++;
    t.status.lastError = message(error);
    t.status.retryAtMs = Date.now() + waitMs;
  }

  #fatal(error: TesseraError): void {
    this.#status.error = error.message;
    this.#emit({ type: "fatal", name: this.name, error: error.message });
    this.#closed = true;
    this.#refreshStatus();
    for (const waiter of this.#idle.splice(0)) waiter();
  }

  /** The error that stopped replication, if one did. */
  get error(): string | null {
    return this.#status.error;
  }

  /**
   * Captures now and waits until every pending image reached every store, or `timeoutMs` passed. Resolves
   * with what is still pending (0 when everything is published; a capture that could not finish in time
   * counts as one); waiting stores are retried at once. Rejects with `SOURCE_UNREADABLE` when the capture
   * failed, and with `CONFLICT` when replication stopped.
   */
  async flush(options: { timeoutMs?: number } = {}): Promise<{ pending: number; sequence: number | null }> {
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    let captured = true;
    if (!this.#closed) captured = await this.#captureAfter(this.#capturesStarted + 1, deadline);
    for (const t of this.#targets) t.kick();
    while (this.#behind() > 0 && Date.now() < deadline && !this.#status.error) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(200, Math.max(1, deadline - Date.now())));
        const idle = this.#idle;
        function done() {
          clearTimeout(timer);
          const at = idle.indexOf(done);
          if (at >= 0) idle.splice(at, 1);
          resolve();
        }
        idle.push(done);
      });
      this.#refreshStatus();
    }
    this.#refreshStatus();
    if (this.#status.error) throw new TesseraError("CONFLICT", this.#status.error);
    return {
      pending: this.#behind() + (captured ? 0 : 1),
      sequence: this.#status.lastSync?.sequence ?? null,
    };
  }

  // Images still to publish: pending ones, or one for a store whose pointer is behind the last capture
  // with nothing pending for it (a store added or emptied while the database was idle).
  #behind(): number {
    const pending = this.#spool.pending().length;
    if (pending > 0) return pending;
    if (this.#owedImage) return 1;
    const captured = this.#spool.capture?.sequence ?? 0;
    return this.#targets.some((t) => t.target.ready && t.target.sequence < captured) ? 1 : 0;
  }

  #notifyIdle(): void {
    for (const waiter of this.#idle.splice(0)) waiter();
  }

  /** The current status. */
  status(): ReplicatorStatus {
    this.#fillStatus();
    return structuredClone(this.#status);
  }

  /**
   * Stops: by default first flushes for up to `timeoutMs` (what is left stays in the spool for the next
   * run), then releases the leases and the spool.
   */
  async close(options: { flush?: boolean; timeoutMs?: number } = {}): Promise<{ pending: number }> {
    let pending = this.#spool.pending().length;
    if ((options.flush ?? true) && !this.#status.error && !this.#closed) {
      pending =
        (await this.flush({ timeoutMs: options.timeoutMs ?? 10_000 }).catch(() => ({ pending }))).pending;
    }
    await this.#shutdown();
    return { pending };
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    this.#abort.abort(new TesseraError("STALE", `The replicator of "${this.name}" stopped`));
    for (const timer of this.#timers) clearInterval(timer);
    if (this.#captureTimer !== undefined) clearTimeout(this.#captureTimer);
    this.#watcher?.close();
    for (const t of this.#targets) t.kick();
    await this.#capturing?.catch(() => {});
    this.#reader.close();
    await Promise.allSettled(this.#loops);
    // A renewal in flight must not write the lease back after it is released.
    await this.#renewing?.catch(() => {});
    await Promise.allSettled(this.#targets.map((t) => releaseLease(t.target.store, this.name, this.#holder)));
    this.#shutDown = true;
    await this.#statusWrite;
    this.#status.running = false;
    this.#fillStatus();
    await writeStatus(this.#spool.dir, this.#status).catch(() => {});
    await this.#releaseOwner();
  }

  // Filesystem events on the database's directory: the file, its -wal and -journal.
  #startWatching(): void {
    if ((process.versions as Record<string, string | undefined>).deno) {
      // Deno's watcher opens and closes every file an event names. Closing any descriptor of a file drops
      // all of this process's POSIX locks on it, which would leave an application's own SQLite connection
      // in this process (a library user's) unlocked. A size/time check every 50 ms stands in, and like an event
      // it reports every change it sees, so the debounce still waits for a quiet moment.
      const timer = setInterval(() => this.#watchPoll(), DENO_WATCH_POLL_MS);
      (timer as { unref?: () => void }).unref?.();
      this.#timers.push(timer);
      return;
    }
    // Not -shm: a capture's own read of a WAL database touches it, and would wake the watcher again.
    const names = new Set(["", "-wal", "-journal"].map((suffix) => basename(this.path) + suffix));
    try {
      this.#watcher = watchFs(dirname(this.path), { persistent: false }, (_event, file) => {
        if (file === null || names.has(String(file))) this.notify();
      });
      this.#watcher.on("error", () => {
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch {
      // Polling alone then notices changes.
      this.#watcher = undefined;
    }
  }

  #polling = false;
  #watchKey = "";
  #watching = false;

  // Deno's stand-in for filesystem events: a change since the previous look is an event.
  async #watchPoll(): Promise<void> {
    if (this.#closed || this.#watching) return;
    this.#watching = true;
    try {
      const key = await this.#statKey();
      if (key !== this.#watchKey) {
        const first = this.#watchKey === "";
        this.#watchKey = key;
        if (!first) this.notify();
      }
    } finally {
      this.#watching = false;
    }
  }
  // The source as it was when a capture last failed: polling retries it at most every CAPTURE_RETRY_MS
  // (an empty or missing file would otherwise start a capture, and a reader process, at every poll).
  #failedStat: { key: string; ms: number } | undefined;

  async #pollChange(): Promise<void> {
    if (this.#closed || this.#polling) return;
    this.#polling = true;
    try {
      const key = await this.#statKey();
      const failed = this.#failedStat;
      if (failed && failed.key === key && Date.now() - failed.ms < CAPTURE_RETRY_MS) return;
      if (key !== this.#lastStat && !this.#capturing && this.#captureTimer === undefined) this.notify();
    } finally {
      this.#polling = false;
    }
  }

  async #statKey(): Promise<string> {
    const parts: string[] = [];
    for (const suffix of ["", "-wal"]) {
      try {
        const s = await stat(this.path + suffix, { bigint: true });
        parts.push(`${s.size}:${s.mtimeNs}:${s.ino}`);
      } catch {
        parts.push("-");
      }
    }
    return parts.join("|");
  }

  // Every poll interval: notice changes events missed, answer flush requests, keep status.json fresh.
  async #tick(): Promise<void> {
    if (this.#closed || this.#ticking) return;
    this.#ticking = true;
    try {
      await this.#tickOnce();
    } finally {
      this.#ticking = false;
    }
  }

  async #tickOnce(): Promise<void> {
    await this.#pollChange();
    const requests = await pendingFlushRequests(this.#spool.dir);
    if (requests.length === 0 && this.#servingFlush.size === 0 && Math.random() < 0.01) {
      await sweepAnswers(this.#spool.dir, 120_000);
    }
    for (const id of requests) {
      if (this.#servingFlush.has(id)) continue;
      // Served in the background, so polling and status.json go on while it waits.
      this.#servingFlush.add(id);
      const started = Date.now();
      void this.flush().then(
        (r) => ({ ok: r.pending === 0, ...r, ms: Date.now() - started }),
        (error) => ({ ok: false, error: message(error) }),
      ).then((answer) => answerFlush(this.#spool.dir, id, answer)).catch(() => {}).finally(() => {
        this.#servingFlush.delete(id);
      });
    }
    this.#refreshStatus();
  }

  #touching = false;

  async #touch(): Promise<void> {
    if (this.#closed || this.#touching) return;
    this.#touching = true;
    try {
      for (const t of this.#targets) {
        const store = t.target.store;
        try {
          const report = await touchChunks(store, this.name, {
            olderThanMs: this.#options.touchOlderThanMs,
            signal: this.#abort.signal,
          });
          this.#emit({
            type: "touched",
            name: this.name,
            store: store.description,
            chunks: report.chunks,
            touched: report.touched,
            bytes: report.bytes,
          });
        } catch (error) {
          if (this.#closed) return;
          this.#emit({
            type: "touch_failed",
            name: this.name,
            store: store.description,
            error: message(error),
          });
        }
      }
    } finally {
      this.#touching = false;
    }
  }

  async #renewLeases(ttlMs: number): Promise<void> {
    if (this.#closed) return;
    for (const t of this.#targets) {
      if (!t.leased) continue;
      try {
        await renewLease(t.target.store, this.name, this.#holder, { ttlMs, signal: this.#abort.signal });
      } catch (error) {
        if (error instanceof TesseraError && error.code === "LEASE_HELD") {
          this.#fatal(error);
          return;
        }
        // An unreachable store: its publish loop reports it.
      }
    }
  }

  #fillStatus(): void {
    const pending = this.#spool.pending();
    this.#status.pending = pending.length;
    this.#status.pendingBytes = this.#spool.bytes;
    this.#status.updatedMs = Date.now();
    this.#status.lagMs = pending.length > 0
      ? Math.max(0, Date.now() - (pending[0]?.createdMs ?? Date.now()))
      : 0;
    for (const t of this.#targets) {
      t.status.behind = pending.filter((p) => !p.publishedTo.includes(t.status.store)).length;
    }
    const everywhere = Math.min(...this.#targets.map((t) => t.status.sequence));
    const lastMs = Math.min(...this.#targets.map((t) => t.status.lastSuccessMs ?? 0));
    if (everywhere > 0 && (this.#status.lastSync?.sequence ?? 0) < everywhere) {
      this.#status.lastSync = { sequence: everywhere, ms: lastMs || Date.now() };
    }
  }

  #refreshStatus(): void {
    if (this.#shutDown) return;
    this.#fillStatus();
    const status = structuredClone(this.#status);
    this.#statusWrite = this.#statusWrite.then(() => writeStatus(this.#spool.dir, status)).catch(() => {});
  }

  #emit(event: ReplicatorEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch {
      // A logger's failure is not the replicator's.
    }
  }

  // Spool changes (capture, publish bookkeeping, coalescing) happen one at a time.
  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
