/**
 * Keeping a replica fresh: which snapshot new transactions start on, and how fresh it is. The poller
 * (poller.ts) prepares newer snapshots off the query path; transactions move to the newest prepared one
 * (with `autoRefresh`, on `refresh`, or after waiting for a check when `maxStalenessMs` says the last one is
 * too old); `lagMs` bounds how far behind the store the served snapshot may be.
 *
 * @module
 */

import { TesseraError } from "../errors.ts";
import type { LoadedManifest } from "../manifest/catalog.ts";
import type { BlobStore } from "../store/types.ts";
import type { EngineSnapshot, ReplicaEngine } from "./engine.ts";
import { ReplicaEmitter, type ReplicaEvents, type ReplicaListener } from "./events.ts";
import type { FirstSnapshot } from "./pointer_check.ts";
import { type NewestSnapshot, Poller, type PollStats } from "./poller.ts";

/** `refresh` levels, as Verneuil's `verneuil_snapshot_refresh` pragma takes them. */
export type RefreshLevel = 0 | 1 | 2;

/** Where a replica's snapshots come from. */
export type ReplicaOrigin =
  | { kind: "database"; store: BlobStore; name: string }
  | { kind: "manifest"; loaded: LoadedManifest };

/** When a replica moves to newer snapshots, and how often it looks for them. */
export interface FreshnessSettings {
  /** Switch to the newest prepared snapshot at the start of every transaction. @default {true} */
  autoRefresh?: boolean | undefined;
  /** How often the background poller checks the pointer; 0 turns polling off. @default {1000} */
  pollIntervalMs?: number | undefined;
  /** When set, a transaction first waits for a check of the store if the last successful one is older. */
  maxStalenessMs?: number | undefined;
}

/** What a replica reports about its snapshots and its checks of the store. */
export interface FreshnessStatus extends PollStats {
  /** The database's name in the store, or the manifest it was pinned to. */
  database: string;
  /** Polls the store for newer snapshots (false when opened from a manifest). */
  follows: boolean;
  autoRefresh: boolean;
  pollIntervalMs: number;
  /** The snapshot new transactions see. */
  sequence: number;
  /** When the source file last changed before that snapshot was taken (ms since the epoch). */
  snapshotCtime: number;
  /** When this process finished fetching that snapshot (ms since the epoch). */
  snapshotUpdated: number;
  /** At most how far behind the store the served snapshot may be, in ms (see docs/REPLICAS.md). */
  lagMs: number;
  /** The newest snapshot prepared (served at the next transaction when `autoRefresh` is on). */
  newestSequence: number;
}

/** The snapshot a replica serves, the newest it prepared, and the poller that finds newer ones. */
export class Freshness {
  readonly #engine: Pick<ReplicaEngine, "prepare" | "serve">;
  readonly #origin: ReplicaOrigin;
  readonly #pollIntervalMs: number;
  readonly #maxStalenessMs: number | undefined;
  #autoRefresh: boolean;
  #closed = false;
  readonly #stop = new AbortController();
  readonly #events = new ReplicaEmitter();
  /** Absent for a replica pinned to a manifest. */
  readonly #poller: Poller | undefined;

  #newest: EngineSnapshot | undefined;
  #served: EngineSnapshot | undefined;
  /** The newest snapshot was known to be the store's newest at this time. */
  #newestFreshAsOf = 0;
  #servedFreshAsOf = 0;

  /** Throws `RangeError` for a setting that is not a duration. */
  constructor(
    engine: Pick<ReplicaEngine, "prepare" | "serve">,
    origin: ReplicaOrigin,
    settings: FreshnessSettings,
  ) {
    this.#engine = engine;
    this.#origin = origin;
    this.#autoRefresh = settings.autoRefresh ?? true;
    this.#pollIntervalMs = settings.pollIntervalMs ?? 1000;
    if (!Number.isFinite(this.#pollIntervalMs) || this.#pollIntervalMs < 0) {
      throw new RangeError(`Cannot open a replica: pollIntervalMs ${this.#pollIntervalMs} is not a duration`);
    }
    this.#maxStalenessMs = settings.maxStalenessMs;
    if (this.#maxStalenessMs !== undefined && !(this.#maxStalenessMs >= 0)) {
      throw new RangeError(`Cannot open a replica: maxStalenessMs ${this.#maxStalenessMs} is not a duration`);
    }
    if (origin.kind !== "database") return;
    const snapshots: NewestSnapshot = {
      newest: () => this.#newest,
      replace: (snapshot) => {
        const previous = this.#newest;
        this.#newest = snapshot;
        previous?.release();
      },
      confirm: (startedMs) => {
        this.#newestFreshAsOf = startedMs;
        if (this.#served === this.#newest) this.#servedFreshAsOf = startedMs;
      },
    };
    this.#poller = new Poller({
      store: origin.store,
      name: origin.name,
      engine,
      snapshots,
      events: this.#events,
      intervalMs: this.#pollIntervalMs,
      signal: this.#stop.signal,
    });
  }

  /**
   * Prepares and serves the first snapshot (rejecting when it cannot, or with `signal`'s reason when that
   * aborts), then starts polling.
   */
  async start(
    options: { signal?: AbortSignal | undefined; first?: FirstSnapshot | undefined } = {},
  ): Promise<void> {
    const { signal } = options;
    const onAbort = () => this.#stop.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      signal?.throwIfAborted();
      if (this.#origin.kind === "manifest") {
        const snapshot = await this.#engine.prepare(this.#origin.loaded.manifest, this.#stop.signal);
        this.#newest = snapshot;
        this.#newestFreshAsOf = snapshot.preparedMs;
      } else {
        await this.#poller?.checkOnce(options.first);
      }
      this.adopt();
      // An abort that lands after the last fetch would otherwise leave a replica whose checks all fail.
      signal?.throwIfAborted();
    } catch (error) {
      throw signal?.aborted ? signal.reason : error;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    this.#poller?.startPolling();
  }

  /** The database's name in the store, or the key of the manifest it is pinned to. */
  get database(): string {
    return this.#origin.kind === "database" ? this.#origin.name : this.#origin.loaded.key;
  }

  get autoRefresh(): boolean {
    return this.#autoRefresh;
  }
  set autoRefresh(on: boolean) {
    this.#autoRefresh = Boolean(on);
  }

  get sequence(): number {
    return this.#served?.manifest.sequence ?? 0;
  }
  get snapshotCtime(): number {
    return this.#served?.manifest.sourceMtimeMs ?? 0;
  }
  get snapshotUpdated(): number {
    return this.#served?.preparedMs ?? 0;
  }
  /** The time since the served snapshot was last known to be the store's newest. */
  get lagMs(): number {
    return Math.max(0, Date.now() - this.#servedFreshAsOf);
  }

  /**
   * Moves to the snapshot a transaction should start on: after a check when `maxStalenessMs` says the last
   * successful one is too old (rejecting with `STALE` when it fails), else to the newest prepared one when
   * `autoRefresh` is on. `undefined` when it did not wait, so the query path awaits nothing extra.
   */
  beforeTransaction(): Promise<void> | undefined {
    const max = this.#maxStalenessMs;
    const poller = this.#poller;
    const last = poller?.lastSuccessMs;
    if (max !== undefined && poller && (last === undefined || Date.now() - last >= max)) {
      return this.#catchUp(poller, max, last);
    }
    if (this.#autoRefresh) this.adopt();
    return undefined;
  }

  /** As `Replica.refresh`: checks the store first for levels 1 and 2, then serves the newest prepared. */
  async refresh(level: RefreshLevel): Promise<number> {
    if (level !== 0 && level !== 1 && level !== 2) {
      throw new RangeError(`Cannot refresh: level ${level} is not 0, 1 or 2`);
    }
    if (level > 0) await this.#poller?.check(level === 2);
    this.adopt();
    return this.snapshotUpdated;
  }

  /** As `Replica.asyncReload`: serves the newest prepared, and starts a check unless one is in flight. */
  asyncReload(): boolean {
    const changed = this.adopt();
    const poller = this.#poller;
    if (poller && !poller.checking) poller.check(false).catch(() => {});
    return changed;
  }

  /** Serves the newest prepared snapshot. True when that changed the served one. */
  adopt(): boolean {
    const newest = this.#newest;
    if (!newest || newest === this.#served) {
      if (newest) this.#servedFreshAsOf = this.#newestFreshAsOf;
      return false;
    }
    this.#engine.serve(newest);
    this.#served = newest;
    this.#servedFreshAsOf = this.#newestFreshAsOf;
    return true;
  }

  status(): FreshnessStatus {
    const stats = this.#poller?.stats();
    return {
      database: this.database,
      follows: this.#origin.kind === "database",
      autoRefresh: this.#autoRefresh,
      pollIntervalMs: this.#pollIntervalMs,
      sequence: this.sequence,
      snapshotCtime: this.snapshotCtime,
      snapshotUpdated: this.snapshotUpdated,
      lagMs: this.lagMs,
      newestSequence: this.#newest?.manifest.sequence ?? 0,
      checks: stats?.checks ?? 0,
      notModified: stats?.notModified ?? 0,
      lastCheckMs: stats?.lastCheckMs,
      lastSuccessMs: stats?.lastSuccessMs,
      consecutiveFailures: stats?.consecutiveFailures ?? 0,
      lastError: stats?.lastError,
    };
  }

  /** Calls `listener` on every event of `type`; returns a function that stops it. */
  on<K extends keyof ReplicaEvents>(type: K, listener: ReplicaListener<K>): () => void {
    return this.#events.on(type, listener);
  }

  /** Stops polling, ends the check in flight and lets go of the newest snapshot (the engine holds the rest). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#poller?.close();
    this.#stop.abort(new TesseraError("UNSUPPORTED", "The replica was closed"));
    const newest = this.#newest;
    this.#newest = undefined;
    this.#served = undefined;
    newest?.release();
  }

  async #catchUp(poller: Poller, max: number, last: number | undefined): Promise<void> {
    try {
      await poller.check(false);
    } catch (error) {
      const age = last === undefined ? "never" : `${Date.now() - last} ms ago`;
      throw new TesseraError(
        "STALE",
        `Cannot start a transaction on replica "${this.database}": maxStalenessMs is ${max}, the ` +
          `last successful check was ${age}, and checking now failed: ${(error as Error).message}`,
        { cause: error },
      );
    }
    this.adopt();
  }
}
