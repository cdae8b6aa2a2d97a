/**
 * `createReplicatingClient`: a @libsql/client `Client` for the application's own writes to a local SQLite
 * file, which has a {@linkcode Replicator} capture the file after every call that may have committed
 * (debounced), so each committed write transaction is published to every writable store.
 *
 * Every call goes to a real `createClient({ url: "file:..." })` and returns its results and errors
 * unchanged. Only this client's calls start captures: commits of other connections or processes, or a
 * `COMMIT` run through `Transaction.execute` instead of `commit()`, are published with the next capture.
 *
 * @module
 */

import { hostname as osHostname } from "node:os";
import process from "node:process";
import { pathToFileURL } from "node:url";
import { type Client, type Config, createClient } from "@libsql/client";
import type {
  InArgs,
  InStatement,
  Replicated,
  ResultSet,
  Transaction,
  TransactionMode,
} from "@libsql/core/api";
import { expandConfig } from "@libsql/core/config";
import { TesseraError } from "../errors.ts";
import { defaultSpoolDir } from "../write/spool.ts";
import { type BlobStore, storeList } from "../store/types.ts";
import type { ReplicatorStatus } from "./control.ts";
import { Replicator, type ReplicatorOptions } from "./replicator.ts";

/** Options of {@linkcode createReplicatingClient}: the local client's, the stores', the replicator's. */
export interface ReplicatingClientOptions
  extends
    Omit<Config, "url" | "encryptionKey">,
    Omit<ReplicatorOptions, "stores" | "hostname" | "watch" | "pollIntervalMs"> {
  /** The database the application writes: a `file:` URL or a plain path. */
  url: string;
  /** The writable store(s); every one receives every snapshot. */
  store?: BlobStore | readonly BlobStore[] | undefined;
  /** Environment for `TESSERA_HOSTNAME`. @default {process.env} */
  env?: Record<string, string | undefined> | undefined;
  /** The host that, with the absolute path, names the database. @default {$TESSERA_HOSTNAME, else this machine's name} */
  hostname?: string | undefined;
  /** How long `close()` keeps publishing before leaving the rest in the spool for the next run, in ms.
   * @default {10000} */
  closeTimeoutMs?: number | undefined;
}

/** What {@linkcode ReplicatingClient.flush} and {@linkcode ReplicatingClient.closeAsync} report. */
export interface FlushResult {
  /** Captured images not yet in every store (0 when everything is published). */
  pending: number;
  /** The newest sequence every store has, or null before the first publish. */
  sequence: number | null;
}

/**
 * Opens the database at `options.url` with @libsql/client and replicates it to the given stores while the
 * application writes through the returned client. Fails like `Replicator.start` (for example with
 * `LEASE_HELD` when another replicator has the database), closing the local client first. The
 * `createReplicatingClient` of `src/config/client.ts` (the one `mod.ts` exports) also takes a config, or
 * `TESSERA_CONFIG`, and opens the stores from it.
 *
 * @example A short-lived program
 * ```ts ignore
 * import { createReplicatingClient } from "./client.ts";
 * import { LocalStore } from "../store/local.ts";
 *
 * const db = await createReplicatingClient({ url: "file:app.db", store: new LocalStore("/backups") });
 * await db.execute("CREATE TABLE IF NOT EXISTS log (at INTEGER)");
 * await db.execute({ sql: "INSERT INTO log VALUES (?)", args: [Date.now()] });
 * const { pending } = await db.closeAsync(); // flushes, then stops
 * console.log(pending); // 0: everything is published
 * ```
 */
export async function createReplicatingClient(options: ReplicatingClientOptions): Promise<ReplicatingClient> {
  const { path, url } = localDatabase(options);
  const env = options.env ?? process.env;
  const stores = storeList(options.store);
  if (stores.length === 0) {
    throw new TypeError(
      "Cannot create a replicating client: give `store` (a BlobStore) or `config` with a writable target",
    );
  }
  const {
    store: _store,
    env: _env,
    closeTimeoutMs: _closeTimeoutMs,
    url: _url,
    ...rest
  } = options;
  const client = createClient({ ...rest, url });
  const captures: CaptureWatch = { error: null };
  let replicator: Replicator;
  try {
    replicator = await Replicator.start(path, {
      ...rest,
      // This client decides when to capture (see ReplicatingClient): no filesystem events, no polling.
      watch: false,
      pollIntervalMs: MAX_TIMER_MS,
      stores,
      hostname: options.hostname ?? (env.TESSERA_HOSTNAME || osHostname()),
      spoolDir: options.spoolDir ?? defaultSpoolDir(),
      onEvent: (event) => {
        if (event.type === "capture_failed") captures.error = event.error;
        else if (event.type === "captured") captures.error = null;
        options.onEvent?.(event);
      },
    });
  } catch (error) {
    client.close();
    throw error;
  }
  // The first capture, which start() began, ends before the application can write.
  await replicator.captureNow().catch(() => {});
  return new ReplicatingClient(client, replicator, {
    captures,
    debounceMs: options.debounceMs,
    maxDelayMs: options.maxDelayMs,
    closeTimeoutMs: options.closeTimeoutMs,
  });
}

// The longest delay timers accept; longer ones fire at once.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The replicator's last capture failure, cleared by its next capture (see `ReplicatingClient.flush`). */
export interface CaptureWatch {
  /** The failed capture's message, or null. */
  error: string | null;
}

/**
 * The local file a replicating client's `url` names, as @libsql/client itself reads the URL, and a URL for
 * it. Throws `TypeError` for an encrypted database (the replicator reads pages unencrypted) and for a URL
 * that names no file on this machine.
 *
 * @example
 * ```ts
 * import { localDatabase } from "./client.ts";
 * console.log(localDatabase({ url: "file:/srv/app.db" }).path); // "/srv/app.db"
 * ```
 */
export function localDatabase(options: { url: string }): { path: string; url: string } {
  if ((options as { encryptionKey?: unknown }).encryptionKey !== undefined) {
    throw new TypeError("Cannot replicate an encrypted database: the replicator reads its pages unencrypted");
  }
  const { url } = options;
  if (typeof url !== "string" || url === "") {
    throw new TypeError("Cannot create a replicating client: `url` must be a file: URL or a path");
  }
  if (url !== ":memory:" && (!/^[a-z][a-z0-9+.-]*:/i.test(url) || /^[a-z]:[\\/]/i.test(url))) {
    return { path: url, url: pathToFileURL(url).href };
  }
  const expanded = expandConfig({ url }, true);
  if (expanded.scheme !== "file" || expanded.path === "" || expanded.path.startsWith(":memory:")) {
    throw new TypeError(
      `Cannot replicate "${url}": give a file: URL or a path of a database on this machine`,
    );
  }
  return { path: expanded.path, url };
}

/**
 * A @libsql/client `Client` whose committed writes are replicated. Create one with
 * {@linkcode createReplicatingClient}.
 *
 * Captures never overlap this client's writes: a capture starts only while no write call or write
 * transaction is in flight, and writes that arrive during a capture wait for it (reads never wait). In a
 * rollback-journal database the capture holds a read lock across awaits, while SQLite's busy wait in the
 * same thread is synchronous: a write running into that lock would stall the thread the capture needs.
 *
 * Closing: `close()` is the `Client` interface's synchronous close. It closes the database connections at
 * once and starts the final flush and the replicator's shutdown in the background (a program that then
 * simply ends still publishes first). `closeAsync()` does the same and resolves when it is done, with what
 * is still pending; a program that calls `process.exit` should `await client.closeAsync()` (or
 * `await client.flush()` before `client.close()`).
 */
export class ReplicatingClient implements Client {
  readonly #client: Client;
  readonly #captures: CaptureWatch;
  readonly #debounceMs: number;
  readonly #maxDelayMs: number;
  readonly #closeTimeoutMs: number;
  /** The replicator publishing this database. */
  readonly replicator: Replicator;
  #closing: Promise<FlushResult> | undefined;
  /** Write calls in flight plus open write transactions. */
  #writes = 0;
  #writesDone: (() => void)[] = [];
  #capturing: Promise<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #changedAt = 0;
  #lastChangeAt = 0;

  /** Use {@linkcode createReplicatingClient}. */
  constructor(client: Client, replicator: Replicator, options: ClientTuning = {}) {
    this.#client = client;
    this.replicator = replicator;
    this.#captures = options.captures ?? { error: null };
    this.#debounceMs = options.debounceMs ?? 100;
    this.#maxDelayMs = options.maxDelayMs ?? 1000;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 10_000;
  }

  /** The database's name in the stores. */
  get name(): string {
    return this.replicator.name;
  }

  get closed(): boolean {
    return this.#client.closed;
  }

  get protocol(): string {
    return this.#client.protocol;
  }

  execute(stmt: InStatement): Promise<ResultSet>;
  execute(sql: string, args?: InArgs): Promise<ResultSet>;
  execute(stmt: InStatement, args?: InArgs): Promise<ResultSet> {
    const call = () =>
      args === undefined ? this.#client.execute(stmt) : this.#client.execute(stmt as string, args);
    return readOnly(stmt) ? call() : this.#write(call);
  }

  batch(stmts: Array<InStatement | [string, InArgs?]>, mode?: TransactionMode): Promise<ResultSet[]> {
    const call = () => mode === undefined ? this.#client.batch(stmts) : this.#client.batch(stmts, mode);
    return mode === "read" ? call() : this.#write(call);
  }

  migrate(stmts: InStatement[]): Promise<ResultSet[]> {
    return this.#write(() => this.#client.migrate(stmts));
  }

  executeMultiple(sql: string): Promise<void> {
    return this.#write(() => this.#client.executeMultiple(sql));
  }

  // Every mode counts as a write: a local "read" transaction (`BEGIN TRANSACTION READONLY`) is not
  // enforced by libsql, and can write and commit.
  async transaction(mode?: TransactionMode): Promise<Transaction> {
    while (this.#capturing) await this.#capturing;
    this.#writes++;
    let tx: Transaction;
    try {
      tx = mode === undefined ? await this.#client.transaction() : await this.#client.transaction(mode);
    } catch (error) {
      this.#writeDone(false);
      throw error;
    }
    return new ReplicatingTransaction(tx, (committed) => this.#writeDone(committed));
  }

  /** An embedded replica's sync (it writes the file, so a capture follows). */
  sync(): Promise<Replicated> {
    return this.#write(() => this.#client.sync());
  }

  /** Reopens the database connections; refused once the client was closed, as replication has stopped. */
  reconnect(): void {
    if (this.#closing) {
      throw new TesseraError(
        "STALE",
        `Cannot reconnect to "${this.replicator.path}": this replicating client is closed; create a new one`,
      );
    }
    return this.#client.reconnect();
  }

  /**
   * Captures now (once no write is in flight) and waits until every captured image reached every store,
   * or `timeoutMs` passed. Resolves with what is still pending; that counts the newest state too when a
   * write transaction stayed open until the deadline, so it could not be captured. Throws when replication
   * stopped with an error (`CONFLICT`, `LEASE_HELD`) or the database could not be read (`SOURCE_UNREADABLE`).
   * After `close()`, waits for the close's own flush and reports it.
   */
  async flush(options: { timeoutMs?: number } = {}): Promise<FlushResult> {
    if (this.#closing) return await this.#closing;
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    this.#captures.error = null;
    const captured = await this.#capture(deadline);
    this.#throwIfFailed();
    for (;;) {
      const status = this.replicator.status();
      if (status.error !== null) throw new TesseraError("CONFLICT", status.error);
      const pending = status.pending + (captured ? 0 : 1);
      // The spool drops an image a moment before the status records its store's new sequence.
      const settled = (status.lastSync?.sequence ?? 0) >= (status.lastCapture?.sequence ?? 0);
      if ((pending === 0 && settled) || Date.now() >= deadline) {
        return { pending, sequence: status.lastSync?.sequence ?? null };
      }
      await sleep(Math.min(20, deadline - Date.now()));
    }
  }

  /**
   * Read your writes through replicas: captures now (once no write is in flight) and returns the sequence
   * of the snapshot that holds every write this client finished before the call. It is published in the
   * background; a replica server asked for it (`Tessera-Min-Sequence`, or `bookmarkFetch`) waits until it
   * serves it. Null before anything was captured. Throws as `flush` does when replication stopped.
   */
  async bookmark(options: { timeoutMs?: number } = {}): Promise<number | null> {
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    this.#captures.error = null;
    const captured = await this.#capture(deadline);
    this.#throwIfFailed();
    if (!captured) {
      throw new TesseraError(
        "STALE",
        `Cannot bookmark "${this.name}": a write transaction stayed open for ${
          options.timeoutMs ?? 30_000
        } ms`,
      );
    }
    const status = this.replicator.status();
    if (status.error !== null) throw new TesseraError("CONFLICT", status.error);
    return status.lastCapture?.sequence ?? status.lastSync?.sequence ?? null;
  }

  /** The replicator's status: pending images, last sync, captures, each store's state. */
  status(): ReplicatorStatus {
    return this.replicator.status();
  }

  /** Closes the database connections now, and flushes and stops replication in the background. */
  close(): void {
    this.#startClose().catch(() => {});
  }

  /**
   * Closes the database connections, publishes what they committed (for up to `timeoutMs`, by default
   * the `closeTimeoutMs` option), and stops the replicator. Resolves with what is still pending: that
   * stays in the spool and a later client (or `tessera replicate`) with the same spool publishes it.
   * Rejects when replication had stopped with an error. Every call returns the same promise.
   */
  closeAsync(options: { timeoutMs?: number } = {}): Promise<FlushResult> {
    return this.#startClose(options.timeoutMs);
  }

  #startClose(timeoutMs?: number): Promise<FlushResult> {
    if (!this.#closing) {
      this.#client.close();
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#closing = this.#finish(timeoutMs ?? this.#closeTimeoutMs);
    }
    return this.#closing;
  }

  // No write can start now, so the replicator's own final capture is safe.
  async #finish(timeoutMs: number): Promise<FlushResult> {
    await this.#capturing;
    this.#captures.error = null;
    const { pending } = await this.replicator.close({ timeoutMs });
    if (this.replicator.error !== null) throw new TesseraError("CONFLICT", this.replicator.error);
    this.#throwIfFailed();
    return { pending, sequence: this.replicator.status().lastSync?.sequence ?? null };
  }

  #throwIfFailed(): void {
    if (this.#captures.error !== null) {
      throw new TesseraError(
        "SOURCE_UNREADABLE",
        `Cannot publish the newest state of "${this.replicator.path}": ${this.#captures.error}`,
      );
    }
  }

  // A call that may commit: it waits for a running capture (without an extra turn when there is none, so
  // calls keep their order), and afterwards a capture is due, whether it succeeded or not (a failed
  // executeMultiple may have committed its first statements).
  async #write<T>(call: () => Promise<T>): Promise<T> {
    while (this.#capturing) await this.#capturing;
    this.#writes++;
    try {
      return await call();
    } finally {
      this.#writeDone(true);
    }
  }

  #writeDone(changed: boolean): void {
    this.#writes--;
    if (changed) this.#changed();
    if (this.#writes === 0) { for (const wake of this.#writesDone.splice(0)) wake(); }
  }

  // Debounced: capture after `debounceMs` of quiet, or `maxDelayMs` after the first change.
  #changed(): void {
    if (this.#closing) return;
    const now = Date.now();
    if (this.#changedAt === 0) this.#changedAt = now;
    this.#lastChangeAt = now;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const due = Math.min(this.#lastChangeAt + this.#debounceMs, this.#changedAt + this.#maxDelayMs);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#capture(Number.POSITIVE_INFINITY);
    }, Math.max(0, due - now));
  }

  // Captures once no write is in flight; false when `deadline` came first. A capture already running
  // holds everything committed so far, since no write ran since it began.
  async #capture(deadline: number): Promise<boolean> {
    for (;;) {
      if (this.#capturing) {
        await this.#capturing;
        return true;
      }
      if (this.#closing) return true;
      if (this.#writes === 0) break;
      if (Date.now() >= deadline) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(1000, Math.max(1, deadline - Date.now())));
        this.#writesDone.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.#changedAt = 0;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    // Capture now; publishing goes on in the background.
    const run = this.replicator.captureNow().then(() => {}, () => {});
    this.#capturing = run;
    await run;
    this.#capturing = undefined;
    return true;
  }
}

/** Tuning of a {@linkcode ReplicatingClient}; {@linkcode createReplicatingClient} fills it in. */
export interface ClientTuning {
  /** Where the replicator's `onEvent` records capture failures. */
  captures?: CaptureWatch | undefined;
  /** Quiet time after a write before capturing, in ms. @default {100} */
  debounceMs?: number | undefined;
  /** Longest wait after a write while writes keep coming, in ms. @default {1000} */
  maxDelayMs?: number | undefined;
  /** How long `close()` keeps publishing, in ms. @default {10000} */
  closeTimeoutMs?: number | undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(1, ms)));
}

/** A write (or deferred) transaction: settling it (commit, rollback, close) ends the client's write. */
class ReplicatingTransaction implements Transaction {
  readonly #tx: Transaction;
  #settled: ((committed: boolean) => void) | undefined;

  constructor(tx: Transaction, settled: (committed: boolean) => void) {
    this.#tx = tx;
    this.#settled = settled;
  }

  get closed(): boolean {
    return this.#tx.closed;
  }

  execute(stmt: InStatement): Promise<ResultSet> {
    return this.#tx.execute(stmt);
  }

  batch(stmts: InStatement[]): Promise<ResultSet[]> {
    return this.#tx.batch(stmts);
  }

  executeMultiple(sql: string): Promise<void> {
    return this.#tx.executeMultiple(sql);
  }

  rollback(): Promise<void> {
    return this.#tx.rollback().finally(() => this.#settle(false));
  }

  commit(): Promise<void> {
    return this.#tx.commit().finally(() => this.#settle(true));
  }

  close(): void {
    try {
      this.#tx.close();
    } finally {
      this.#settle(false);
    }
  }

  // Once: a commit may have written even when it failed; a rollback or close did not.
  #settle(committed: boolean): void {
    const settled = this.#settled;
    this.#settled = undefined;
    settled?.(committed);
  }
}

// A statement that cannot write: a SELECT or EXPLAIN (after any comments). Anything else may write.
function readOnly(stmt: InStatement): boolean {
  const sql = typeof stmt === "string" ? stmt : stmt.sql;
  const head = sql.replace(/^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/, "");
  return /^(?:SELECT|EXPLAIN)\b/i.test(head);
}
