/**
 * How many runs a reader keeps in flight: it starts with a few and doubles them while the bytes the store
 * delivers per second grow by a tenth or more, up to the caller's bound; a doubling that did not pay is
 * taken back. On loopback a couple of requests fill the pipe; a store 20 ms away needs many.
 *
 * @module
 */

/** A bound on requests in flight that follows the throughput it gets. */
export class AdaptiveWidth {
  readonly max: number;
  #width: number;
  #growing = true;
  #best = 0;
  #previous = 0;
  #since: number;
  #bytes = 0;
  #runs = 0;
  readonly #now: () => number;

  constructor(max: number, start = 4, now: () => number = () => performance.now()) {
    this.max = max;
    this.#now = now;
    this.#since = now();
    this.#width = Math.max(1, Math.min(max, start));
    this.#growing = this.#width < max;
  }

  /** Requests to keep in flight now. */
  get width(): number {
    return this.#width;
  }

  /** Tells of a request that delivered `bytes`. */
  record(bytes: number): void {
    if (!this.#growing) return;
    this.#bytes += bytes;
    this.#runs++;
    // Judged over twice as many requests as are in flight, so that every one of them counts.
    if (this.#runs < 2 * this.#width) return;
    const now = this.#now();
    const rate = this.#bytes / Math.max(1, now - this.#since);
    if (rate >= this.#best * 1.1) {
      this.#best = rate;
      this.#previous = this.#width;
      this.#width = Math.min(this.max, this.#width * 2);
      this.#growing = this.#width > this.#previous;
    } else {
      // The last doubling did not pay: back to where it was, and there it stays.
      if (this.#previous > 0) this.#width = this.#previous;
      this.#growing = false;
    }
    this.#since = now;
    this.#bytes = 0;
    this.#runs = 0;
  }
}
