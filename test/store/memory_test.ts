import { MemoryStore } from "../../src/store/memory.ts";
import { storeConformance } from "./conformance.ts";

storeConformance("memory", () => {
  const store = new MemoryStore();
  return Promise.resolve({ store, writer: store, teardown: () => Promise.resolve() });
});
