/**
 * Bearer tokens, per database. A presented token is hashed (SHA-256) and compared with the hash of every
 * configured token, all of them, byte by byte without stopping early: how long a check takes does not
 * depend on how much of a token was right, nor on which token matched. Answers never say whether a database
 * exists: no token, or one the server does not know, is 401 for every name; a known token is 403 for every
 * name it does not open, configured or not.
 *
 * @module
 */

import { ServerError } from "./errors.ts";

/** Who may read a database: `public`, or the holders of `tokens`. */
export interface Access {
  public: boolean;
  tokens: readonly string[];
}

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ (b[i] ?? 0);
  return diff === 0;
}

/** The tokens of every database, hashed once. */
export class Gate {
  readonly #entries: { hash: Uint8Array; databases: Set<string> }[] = [];
  readonly #public = new Set<string>();

  private constructor() {}

  /** Builds the gate for `databases` (name → access). */
  static async create(databases: ReadonlyMap<string, Access>): Promise<Gate> {
    const gate = new Gate();
    const byToken = new Map<string, Set<string>>();
    for (const [name, access] of databases) {
      if (access.public) gate.#public.add(name);
      for (const token of access.tokens) {
        if (!byToken.has(token)) byToken.set(token, new Set());
        byToken.get(token)!.add(name);
      }
    }
    for (const [token, names] of byToken) gate.#entries.push({ hash: await sha256(token), databases: names });
    return gate;
  }

  /**
   * Throws `UNAUTHORIZED` (401) or `FORBIDDEN` (403) unless the `Authorization` header opens `database`
   * (which need not exist: the answer is the same).
   */
  async check(authorization: string | null | undefined, database: string): Promise<void> {
    if (this.#public.has(database)) return;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
    if (!match) {
      throw new ServerError(
        401,
        "UNAUTHORIZED",
        "A bearer token is required: send Authorization: Bearer <token>",
      );
    }
    const hash = await sha256(match[1]!);
    let opens: Set<string> | undefined;
    for (const entry of this.#entries) {
      if (same(hash, entry.hash)) opens = entry.databases;
    }
    if (opens === undefined) throw new ServerError(401, "UNAUTHORIZED", "The bearer token is not valid");
    if (!opens.has(database)) {
      throw new ServerError(403, "FORBIDDEN", `The bearer token does not open database "${database}"`);
    }
  }
}
