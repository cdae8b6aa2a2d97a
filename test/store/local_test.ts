import { LocalStore } from "../../src/store/local.ts";
import { makeTempDir, removeDir } from "../_helpers/temp.ts";
import { storeConformance } from "./conformance.ts";

storeConformance("local directory", async () => {
  const dir = await makeTempDir("local-store");
  const store = new LocalStore(dir);
  return { store, writer: store, teardown: () => removeDir(dir) };
});
