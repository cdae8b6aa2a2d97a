import { HttpStore } from "../../src/store/http.ts";
import { LocalStore } from "../../src/store/local.ts";
import { startStaticServer } from "../_helpers/static_server.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { storeConformance } from "./conformance.ts";

// A plain static file server (the http-server package, in its own process) serves a directory that the
// local store writes: the read-only HTTP store must read it as any store would.
storeConformance("read-only HTTP (static server over a directory store)", async () => {
  const dir = await makeTempDir("http-store");
  const server = await startStaticServer(dir);
  return {
    store: new HttpStore(server.url),
    writer: new LocalStore(dir),
    teardown: async () => {
      await server.stop();
      await removeDir(dir);
    },
  };
});
