import { describe } from "node:test";
import { verifySnapshot } from "../../src/snapshot/directory.ts";
import { imageReaderConformance, type ImageReaderFixture } from "../restore/read_image_conformance.ts";

/** Directory snapshot verification: reads the newest snapshot back and hashes it, keeping nothing. */
const verify: ImageReaderFixture = {
  incremental: false,
  servedHeader: false,
  open: async () => ({
    read: async (store, manifest, options) => {
      const report = await verifySnapshot(store, manifest.identity.name, {
        sequence: manifest.sequence,
        ...options,
      });
      return { sha256: report.sha256, fetched: report.chunksRead };
    },
    close: async () => {},
  }),
};

describe("verifySnapshot() reads through readImage()", () => imageReaderConformance(verify));
