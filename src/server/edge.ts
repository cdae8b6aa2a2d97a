/**
 * The server as one `fetch` handler for edge platforms (Deno Deploy, Cloudflare Workers, Bun, any
 * `fetch(request) => Response` host): the databases open on the first request (an isolate cannot wait at
 * its top level), with the platform's environment, and every request after that goes to the same app.
 *
 * @module
 */

import { type AppOptions, createApp, type TesseraApp } from "./app.ts";

/** A handler `export default` can hand to an edge platform. */
export interface FetchHandler {
  fetch(request: Request, env?: unknown): Promise<Response>;
  /** Shuts the app down once it was opened (see `TesseraApp.shutdown`). */
  shutdown(options?: { timeoutMs?: number }): Promise<void>;
}

/**
 * A `fetch` handler serving the databases `open` opens. A failed open answers 503 `UNAVAILABLE` (its
 * reason goes to `console.error`, not to the caller, who may hold no token) and is tried again on the
 * next request (one attempt at a time).
 *
 * @example A Worker-style module
 * ```ts ignore
 * import { createFetchHandler, HttpStore, openReplica } from "../web.ts";
 *
 * export default createFetchHandler(async (env) => ({
 *   databases: {
 *     app: {
 *       replica: await openReplica("app", { store: new HttpStore("https://backups.example.com/store/") }),
 *       tokens: [(env as { TOKEN: string }).TOKEN],
 *     },
 *   },
 * }));
 * ```
 */
export function createFetchHandler(open: (env: unknown) => Promise<AppOptions>): FetchHandler {
  let app: Promise<TesseraApp> | undefined;
  const unavailable = () =>
    new Response(
      JSON.stringify({
        message: "The databases could not be opened yet: retry shortly (the server's log says why)",
        code: "UNAVAILABLE",
      }),
      { status: 503, headers: { "content-type": "application/json", "retry-after": "1" } },
    );
  return {
    async fetch(request: Request, env?: unknown): Promise<Response> {
      app ??= open(env).then((options) => {
        try {
          return createApp(options);
        } catch (error) {
          // Opened but refused (a bad name, say): the next request opens them again, so close these.
          const databases = options.databases instanceof Map
            ? [...options.databases.values()]
            : Object.values(options.databases);
          for (const db of databases) db.replica.close();
          throw error;
        }
      });
      let ready: TesseraApp;
      try {
        ready = await app;
      } catch (error) {
        if (app !== undefined) {
          app = undefined;
          // For the operator's log only: the reason may name stores and databases, which callers, who may
          // hold no token, must not learn.
          console.error(`tessera: the databases could not be opened: ${(error as Error)?.message ?? error}`);
        }
        return unavailable();
      }
      return await ready.fetch(request);
    },
    async shutdown(options?: { timeoutMs?: number }): Promise<void> {
      const opened = await app?.catch(() => undefined);
      await opened?.shutdown(options);
    },
  };
}
