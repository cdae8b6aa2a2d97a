/**
 * The events a replica emits, and the listeners that hear them.
 *
 * @module
 */

/** Events a replica emits. */
export interface ReplicaEvents {
  /** A newer snapshot was prepared. */
  snapshot: { sequence: number; chunksFetched: number; preparedMs: number };
  /** A check or a refresh failed; the replica keeps serving the snapshot it had. */
  error: { error: Error; atMs: number };
}

/** A function called with each event of type `K`. */
export type ReplicaListener<K extends keyof ReplicaEvents> = (event: ReplicaEvents[K]) => void;

/** The listeners of one replica, by event type. */
export class ReplicaEmitter {
  readonly #listeners = {
    snapshot: new Set<ReplicaListener<"snapshot">>(),
    error: new Set<ReplicaListener<"error">>(),
  };

  /** Calls `listener` on every event of `type`; returns a function that stops it. */
  on<K extends keyof ReplicaEvents>(type: K, listener: ReplicaListener<K>): () => void {
    const set = this.#listeners[type] as Set<ReplicaListener<K>>;
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Calls every listener of `type` with `event`. */
  emit<K extends keyof ReplicaEvents>(type: K, event: ReplicaEvents[K]): void {
    for (const listener of this.#listeners[type] as Set<ReplicaListener<K>>) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own: it must not break the replica.
      }
    }
  }
}
