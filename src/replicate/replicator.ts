/**
 * The replicator: keeps one database published to every writable store while the application writes.
 * It notices commits (filesystem events, with a polling fallback), waits for a quiet moment, captures a
 * consistent image into the spool, and publishes spooled images in order to each store on its own, with
 * retries and backoff. A store outage or a crash loses nothing it had captured; the spool's size is
 * bounded by dropping older unpublished images (only the newest matters for the pointer).
 *
 * This file starts and stops the parts and runs the flush protocol; the parts are `watch.ts` (when to
 * capture), `capture_loop.ts` (capturing into the spool), `publish_loop.ts` (one store's publishing),
 * `chores.ts` (lease renewal, polling, flush requests, touching) and `status.ts` (status and events).
 *
 * @module
 */

import { resolve } from "node:path";
import process from "node:process";
import { TesseraError } from "../errors.ts";
import { checkChosenName, deriveName } from "../manifest/naming.ts";
import { type LeaseHolder, releaseLease } from "../write/lease.ts";
import { PublishTarget } from "../write/publish.ts";
import { defaultSpoolDir, Spool } from "../write/spool.ts";
import { CaptureLoop } from "./capture_loop.ts";
import { Chores } from "./chores.ts";
import type { ReplicatorStatus } from "./control.ts";
import { type ReplicatorOptions, type ReplicatorSettings, replicatorSettings } from "./options.ts";
import { type PublishHost, PublishLoop } from "./publish_loop.ts";
import { type ReplicatorEvent, StatusBook } from "./status.ts";
import { SourceWatch } from "./watch.ts";

export type { ReplicatorOptions } from "./options.ts";
export type { ReplicatorEvent } from "./status.ts";

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
  /** The database file, as an absolute path. */
  readonly path: string;
  /** The database's name in the stores. */
  readonly name: string;
  readonly #settings: ReplicatorSettings;
  readonly #onEvent: ReplicatorOptions["onEvent"];
  readonly #spool: Spool;
  readonly #holder: LeaseHolder;
  readonly #releaseOwner: () => Promise<void>;
  readonly #abort = new AbortController();
  readonly #book: StatusBook;
  readonly #watch: SourceWatch;
  readonly #captures: CaptureLoop;
  readonly #loops: PublishLoop[];
  readonly #chores: Chores;
  #running: Promise<void>[] = [];
  #lock: Promise<unknown> = Promise.resolve();
  #closed = false;
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
    const settings = replicatorSettings(options);
    this.#settings = settings;
    this.#onEvent = options.onEvent;
    this.#spool = spool;
    this.#holder = holder;
    this.#releaseOwner = releaseOwner;
    const now = Date.now();
    const book = new StatusBook(spool, {
      name,
      path,
      hostname: options.hostname,
      writer: holder.writer,
      startedMs: now,
      maxSpoolBytes: settings.maxSpoolBytes,
    });
    this.#book = book;
    // What every part may ask of the replicator; each part's own interface names what it uses.
    const shared = {
      name,
      holder,
      spool,
      book,
      signal: this.#abort.signal,
      closed: () => this.#closed,
      emit: (event: ReplicatorEvent) => this.#emit(event),
      fatal: (error: TesseraError) => this.#fatal(error),
      locked: <T>(fn: () => Promise<T>) => this.#locked(fn),
    };
    this.#watch = new SourceWatch(path, settings, {
      closed: shared.closed,
      capturing: () => this.#captures.busy,
      due: () => this.#requestCapture(false),
    });
    this.#captures = new CaptureLoop(path, settings, {
      ...shared,
      watch: this.#watch,
      inFlight: () => this.#loops.map((loop) => loop.inFlight),
      kick: () => this.#kickAll(),
    });
    const publishHost: PublishHost = {
      ...shared,
      stores: options.stores.map((store) => store.description),
      requestCapture: (full, force) => this.#requestCapture(full, force),
      skipPast: (sequence) => this.#captures.skipPast(sequence),
      caughtUp: (loop) => this.#caughtUp(loop),
    };
    this.#loops = options.stores.map((store) =>
      new PublishLoop(
        new PublishTarget(store, name, holder.writer, { startedMs: now }),
        book.addTarget(store.description),
        settings,
        publishHost,
      )
    );
    this.#chores = new Chores(settings, {
      ...shared,
      spoolDir: spool.dir,
      stores: this.#loops,
      poll: () => this.#watch.poll(),
      flush: () => this.flush(),
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
    const { spool, release: releaseOwner } = await Spool.claim(
      options.spoolDir ?? defaultSpoolDir(),
      name,
      "replicate",
      file,
    );
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
    // Every reachable store's lease: a store that is down now is checked when it comes back (its pointer
    // check catches another writer).
    const results = await Promise.allSettled(this.#loops.map((loop) => loop.begin()));
    for (const [i, result] of results.entries()) {
      if (result.status === "rejected") {
        const error = result.reason;
        if (error instanceof TesseraError && (error.code === "LEASE_HELD" || error.code === "CONFLICT")) {
          throw error;
        }
        (this.#loops[i] as PublishLoop).noteFailure(error, 0);
      }
    }
    await this.#captures.chooseFirstSequence(this.#loops.map((loop) => loop.target));
    this.#chores.start();
    if (this.#settings.watch) this.#watch.start();
    for (const loop of this.#loops) this.#running.push(loop.run());
    this.#book.refresh();
    this.#requestCapture(false, this.#storeNeedsImage());
  }

  // A reachable store's pointer is behind the last capture and no pending image is due for it: it was
  // added, or emptied, while the database was idle. It needs a new image, whatever the source says.
  #storeNeedsImage(): boolean {
    const captured = this.#spool.capture?.sequence ?? 0;
    const pending = this.#spool.pending();
    return this.#loops.some((loop) =>
      loop.target.ready && loop.target.sequence < captured &&
      !pending.some((p) => !p.publishedTo.includes(loop.status.store))
    );
  }

  /** A commit may have happened: capture soon (debounced). */
  notify(): void {
    this.#watch.notify();
  }

  #requestCapture(full: boolean, force = false): void {
    this.#watch.requested();
    this.#captures.request(full, force);
  }

  /**
   * Captures now: resolves once a capture that started after this call has finished (however long the
   * source's lock takes), and rejects with `SOURCE_UNREADABLE` when that capture failed.
   */
  async captureNow(): Promise<void> {
    await this.#captureAfter(this.#captures.started + 1, Infinity);
  }

  // Requests a capture and waits (until `deadline`) for capture `want` or a later one to finish; false when
  // the deadline came first.
  #captureAfter(want: number, deadline: number): Promise<boolean> {
    this.#watch.cancel();
    this.#requestCapture(false);
    return this.#captures.waitFor(want, deadline);
  }

  #kickAll(): void {
    for (const loop of this.#loops) loop.kick();
  }

  // A publish loop has nothing left to send.
  #caughtUp(loop: PublishLoop): void {
    if (loop.target.ready && this.#storeNeedsImage() && !this.#captures.busy) {
      this.#requestCapture(false, true);
    }
    this.#book.refresh();
    this.#notifyIdle();
  }

  #fatal(error: TesseraError): void {
    this.#book.fail(error.message);
    this.#emit({ type: "fatal", name: this.name, error: error.message });
    this.#closed = true;
    this.#book.refresh();
    this.#notifyIdle();
  }

  /** The error that stopped replication, if one did. */
  get error(): string | null {
    return this.#book.error;
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
    if (!this.#closed) captured = await this.#captureAfter(this.#captures.started + 1, deadline);
    this.#kickAll();
    while (this.#behind() > 0 && Date.now() < deadline && !this.#book.error) {
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
      this.#book.refresh();
    }
    this.#book.refresh();
    if (this.#book.error) throw new TesseraError("CONFLICT", this.#book.error);
    return {
      pending: this.#behind() + (captured ? 0 : 1),
      sequence: this.#book.lastSync?.sequence ?? null,
    };
  }

  // Images still to publish: pending ones, or one for a store whose pointer is behind the last capture
  // with nothing pending for it (a store added or emptied while the database was idle).
  #behind(): number {
    const pending = this.#spool.pending().length;
    if (pending > 0) return pending;
    if (this.#captures.owed) return 1;
    const captured = this.#spool.capture?.sequence ?? 0;
    return this.#loops.some((loop) => loop.target.ready && loop.target.sequence < captured) ? 1 : 0;
  }

  #notifyIdle(): void {
    for (const waiter of this.#idle.splice(0)) waiter();
  }

  /** The current status. */
  status(): ReplicatorStatus {
    return this.#book.snapshot();
  }

  /**
   * Stops: by default first flushes for up to `timeoutMs` (what is left stays in the spool for the next
   * run), then releases the leases and the spool.
   */
  async close(options: { flush?: boolean; timeoutMs?: number } = {}): Promise<{ pending: number }> {
    let pending = this.#spool.pending().length;
    if ((options.flush ?? true) && !this.#book.error && !this.#closed) {
      pending =
        (await this.flush({ timeoutMs: options.timeoutMs ?? 10_000 }).catch(() => ({ pending }))).pending;
    }
    await this.#shutdown();
    return { pending };
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    this.#abort.abort(new TesseraError("STALE", `The replicator of "${this.name}" stopped`));
    this.#chores.stop();
    this.#watch.close();
    this.#kickAll();
    await this.#captures.close();
    await Promise.allSettled(this.#running);
    // A renewal in flight must not write the lease back after it is released.
    await this.#chores.settled();
    await Promise.allSettled(this.#loops.map((loop) => releaseLease(loop.store, this.name, this.#holder)));
    await this.#book.stop();
    await this.#releaseOwner();
  }

  #emit(event: ReplicatorEvent): void {
    try {
      this.#onEvent?.(event);
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
