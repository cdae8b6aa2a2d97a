/**
 * Bearer tokens, per database. A presented token is hashed (SHA-256) and compared with the hash of every
 * configured token, all of them, byte by byte without stopping early: how long a check takes does not
 * depend on how much of a token was right, nor on which token matched. Answers never say whether a database
 * exists: no token, or one the server does not know, is 401 for every name; a known token is 403 for every
 * name it does not open, configured or not.
 *
 * @module
 */

import { sha256 } from "../bytes.ts";
import { ServerError } from "./errors.ts";

// What an Authorization header carries after "Bearer ": one run of visible ASCII characters. Whitespace
// would split it, control characters cannot be sent, and wider characters travel as Latin-1 from some
// clients and as UTF-8 from others (curl), so they would match for some and not for others.
const TOKEN = /^[\x21-\x7e]+$/;

/**
 * Why `token` cannot be a bearer token, as a phrase to follow the token's name ("… is empty"), or
 * `undefined` when it can. The phrase never quotes the token.
 *
 * @example
 * ```ts
 * import { tokenProblem } from "./auth.ts";
 * console.log(tokenProblem("s3cret"), tokenProblem("two words")); // undefined "contains whitespace, …"
 * ```
 */
export function tokenProblem(token: string): string | undefined {
  if (token === "") return "is empty";
  if (!TOKEN.test(token)) {
    return "contains whitespace, a control character or a character outside ASCII, which an " +
      '"Authorization: Bearer" header cannot carry the same way from every client: use visible ASCII ' +
      "characters only";
  }
  return undefined;
}

/**
 * Throws `TypeError` for a token no client could send (see {@linkcode tokenProblem}), naming `owner` and
 * the token's place in `tokens`, never the token.
 */
export function checkTokens(owner: string, tokens: readonly unknown[]): void {
  tokens.forEach((token, i) => {
    const problem = typeof token === "string" ? tokenProblem(token) : "is not a string";
    if (problem !== undefined) throw new TypeError(`Token ${i + 1} of ${owner} ${problem}`);
  });
}

/** Who may read a database: `public`, or the holders of `tokens`. */
export interface Access {
  public: boolean;
  tokens: readonly string[];
}

const encoder = new TextEncoder();

function hashToken(text: string): Promise<Uint8Array> {
  return sha256(encoder.encode(text));
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

  /** Builds the gate for `databases` (name → access), whose tokens {@linkcode checkTokens} accepted. */
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
    for (const [token, names] of byToken) {
      gate.#entries.push({ hash: await hashToken(token), databases: names });
    }
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
    const hash = await hashToken(match[1]!);
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
