/**
 * How the long-running commands (`tessera replicate`, `tessera serve`) stop: the first SIGINT or SIGTERM
 * asks them to finish gracefully, a second one exits at once (130 for SIGINT, 143 for SIGTERM).
 *
 * @module
 */

import process from "node:process";

/** A command's stop signals, from {@linkcode stopSignals}. */
export interface StopSignals {
  /** Resolves with the first signal's name. */
  stopped: Promise<string>;
  /** Stops listening for the signals. */
  dispose(): void;
}

/**
 * Listens for SIGINT and SIGTERM. `again` is called with the second signal just before the process exits.
 */
export function stopSignals(again: (signal: string) => void): StopSignals {
  let signals = 0;
  let stop: ((signal: string) => void) | undefined;
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  const onSignal = (signal: string) => {
    if (++signals > 1) {
      again(signal);
      process.exit(signal === "SIGINT" ? 130 : 143);
    }
    stop?.(signal);
  };
  const onInt = () => onSignal("SIGINT");
  const onTerm = () => onSignal("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  return {
    stopped,
    dispose() {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
    },
  };
}
