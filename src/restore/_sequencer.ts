/**
 * Putting results that arrive in any order back in order, with a bound on how far work may run ahead.
 *
 * @module
 */

/**
 * Hands values completed in any order to `consume` in index order, from `first` on, and holds back work
 * that would run `window` or more indexes ahead of the next value to be consumed.
 */
export class Sequencer<T> {
  readonly #window: number;
  readonly #consume: (value: T) => void;
  readonly #ready = new Map<number, T>();
  readonly #waiting = new Set<{ index: number; wake: () => void }>();
  #next: number;

  constructor(window: number, consume: (value: T) => void, first = 1) {
    this.#window = window;
    this.#consume = consume;
    this.#next = first;
  }

  /** Resolves once work on `index` may start; rejects with the signal's reason if it is aborted first. */
  turn(index: number, signal?: AbortSignal): Promise<void> {
    if (index < this.#next + this.#window) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiting.delete(waiter);
        reject(signal?.reason);
      };
      const waiter = {
        index,
        wake: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.add(waiter);
    });
  }

  /** Records the value of `index`, consumes every value now in order, and wakes work the window admits. */
  complete(index: number, value: T): void {
    this.#ready.set(index, value);
    while (this.#ready.has(this.#next)) {
      const next = this.#ready.get(this.#next) as T;
      this.#ready.delete(this.#next++);
      this.#consume(next);
    }
    for (const waiter of this.#waiting) {
      if (waiter.index >= this.#next + this.#window) continue;
      this.#waiting.delete(waiter);
      waiter.wake();
    }
  }
}
