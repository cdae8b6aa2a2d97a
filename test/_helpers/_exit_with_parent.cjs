"use strict";
// Preloaded (`node --require`) into every server process the test helpers start. The parent holds the write
// end of our stdin pipe until it exits, so end-of-file on stdin means the test process is gone, even when it
// was killed before it could call stop(); exiting then keeps orphaned servers from piling up. SIGTERM also
// goes through process.exit() so that the server script's "exit" hooks (such as cleanup) run.
process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
