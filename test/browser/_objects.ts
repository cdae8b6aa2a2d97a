// TEMPORARY until the server's object endpoint lands.
import type { BlobStore } from "../../src/store/types.ts";

export function objectsHandler(store: BlobStore, prefix: string) {
  return async (request: Request): Promise<Response | undefined> => {
    const path = new URL(request.url).pathname;
    if (!path.startsWith(prefix)) return undefined;
    const key = decodeURIComponent(path.slice(prefix.length));
    const m = /bytes=(\d+)-(\d*)/.exec(request.headers.get("range") ?? "");
    const range = m
      ? { offset: Number(m[1]), length: m[2] ? Number(m[2]) - Number(m[1]) + 1 : undefined }
      : undefined;
    const got = await store.get(key, range ? { range: range as { offset: number; length: number } } : {});
    if (got.status !== "ok") return new Response("", { status: 404 });
    const headers: Record<string, string> = { etag: got.etag, "cache-control": "no-store" };
    if (m) {
      headers["content-range"] = `bytes ${range!.offset}-${range!.offset + got.body.length - 1}/${got.size}`;
    }
    return new Response(request.method === "HEAD" ? null : got.body as Uint8Array<ArrayBuffer>, { status: m ? 206 : 200, headers });
  };
}
