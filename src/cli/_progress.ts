/**
 * Progress on a terminal: one line on stderr, rewritten in place, at most a few times a second. Nothing
 * when stderr is not a terminal, so piped and scripted runs stay quiet.
 *
 * @module
 */

import type { CliIo } from "./_io.ts";

/** Reports progress of one task. */
export interface Progress {
  update(done: number, total: number): void;
  done(): void;
}

/** A progress line for `label`, or a silent one when stderr is not a terminal. */
export function progressPrinter(io: CliIo, label: string): Progress {
  if (!io.isTty) return { update: () => {}, done: () => {} };
  let last = 0;
  let shown = false;
  return {
    update(done, total) {
      const now = Date.now();
      if (now - last < 200 && done < total) return;
      last = now;
      shown = true;
      const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
      io.stderr(
        `\r${label}: ${pct}% (${(done / 1048576).toFixed(1)} of ${(total / 1048576).toFixed(1)} MiB)\x1b[K`,
      );
    },
    done() {
      if (shown) io.stderr("\r\x1b[K");
    },
  };
}
