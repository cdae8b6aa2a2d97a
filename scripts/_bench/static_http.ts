/**
 * A real static HTTP server over a directory, the upper bound for reading files over HTTP on this machine:
 * Debian's nginx when `/usr/sbin/nginx` exists, started unprivileged with a generated config (its pid, logs
 * and temporary files in a directory of its own), else python3's `http.server` module (a
 * ThreadingHTTPServer speaking HTTP/1.1, so connections are kept alive as nginx keeps them).
 *
 * @module
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { promisify } from "node:util";
import { freePort } from "../../test/_helpers/static_server.ts";

const NGINX = "/usr/sbin/nginx";
const READY_TIMEOUT_MS = 20_000;
const execFileAsync = promisify(execFile);

/** Which server {@linkcode startStaticHttp} runs; `"auto"` is nginx when installed, else python3. */
export type StaticServerKind = "auto" | "nginx" | "python";

/** A running static server. */
export interface StaticHttp {
  /** `http://127.0.0.1:PORT`, without a trailing slash; `${url}/a/b` serves `<root>/a/b`. */
  url: string;
  /** What serves, with its version: `"nginx/1.22.1"`, or `"python3 http.server (ThreadingHTTPServer), Python 3.11.2"`. */
  server: string;
  /** Stops the server and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
}

// Serves the directory in argv[2] on 127.0.0.1:argv[1], one thread per connection, HTTP/1.1 keep-alive.
const PYTHON_SERVER = `
import functools, http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
handler = functools.partial(Handler, directory=sys.argv[2])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
`;

/**
 * Serves `root` over HTTP on 127.0.0.1 and returns once it answers requests.
 *
 * @param root The directory whose files are served.
 * @param options `work`: a directory for nginx's config, pid, logs and temporary files; `kind`: which server.
 *
 * @example Serve a directory with nginx (or python3)
 * ```ts
 * import { startStaticHttp } from "./static_http.ts";
 *
 * const web = await startStaticHttp("/tmp/site", { work: "/tmp/site-nginx" });
 * console.log(web.server, (await fetch(`${web.url}/index.html`)).status);
 * await web.stop();
 * ```
 */
export async function startStaticHttp(
  root: string,
  options: { work: string; kind?: StaticServerKind },
): Promise<StaticHttp> {
  const kind = options.kind ?? "auto";
  const useNginx = kind === "nginx" || (kind === "auto" && existsSync(NGINX));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess;
  let server: string;
  if (useNginx) {
    const conf = await writeNginxConfig(root, options.work, port);
    child = spawn(NGINX, ["-p", options.work, "-c", conf, "-e", join(options.work, "error.log")], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    server = await nginxVersion();
  } else {
    child = spawn("python3", ["-c", PYTHON_SERVER, String(port), root], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    server = `python3 http.server (ThreadingHTTPServer), ${await pythonVersion()}`;
  }
  const running = watch(child, useNginx ? "nginx" : "python3 http.server");
  await running.ready(url);
  return { url, server, stop: running.stop };
}

async function writeNginxConfig(root: string, work: string, port: number): Promise<string> {
  await mkdir(join(work, "temp"), { recursive: true });
  const temp = (name: string) => `${name}_temp_path ${JSON.stringify(join(work, "temp", name))};`;
  // As root, nginx's workers would run as "nobody", who cannot enter a private temporary directory.
  const user = process.getuid?.() === 0 ? "user root;\n" : "";
  const conf = `${user}daemon off;
worker_processes 2;
pid ${JSON.stringify(join(work, "nginx.pid"))};
error_log ${JSON.stringify(join(work, "error.log"))} warn;
events { worker_connections 1024; }
http {
  access_log off;
  ${temp("client_body")}
  ${temp("proxy")}
  ${temp("fastcgi")}
  ${temp("uwsgi")}
  ${temp("scgi")}
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:${port};
    root ${JSON.stringify(root)};
  }
}
`;
  const path = join(work, "nginx.conf");
  await writeFile(path, conf);
  return path;
}

async function nginxVersion(): Promise<string> {
  const { stderr } = await execFileAsync(NGINX, ["-v"]);
  return stderr.replace(/^nginx version:\s*/, "").trim() || "nginx";
}

async function pythonVersion(): Promise<string> {
  const { stdout, stderr } = await execFileAsync("python3", ["--version"]);
  return (stdout || stderr).trim();
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

// Waits for the server to answer; stops it (with its stderr in the error) if it exits or never answers.
function watch(
  child: ChildProcess,
  name: string,
): { ready(url: string): Promise<void>; stop(): Promise<void> } {
  if (!exitHookInstalled) {
    // SIGTERM, not SIGKILL: nginx's master then stops its workers, which a killed master would leave behind.
    process.on("exit", () => running.forEach((c) => c.kill("SIGTERM")));
    exitHookInstalled = true;
  }
  running.add(child);
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (text: string) => stderr = (stderr + text).slice(-8192));
  let exited = false;
  const exit = new Promise<string>((resolve) => {
    child.on("error", (error) => (exited = true, resolve(`could not be started: ${error.message}`)));
    child.on("close", (code, signal) => (exited = true, resolve(signal ?? `exit code ${code}`)));
  }).finally(() => running.delete(child));
  async function stop(): Promise<void> {
    if (exited) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exit;
    clearTimeout(timer);
  }
  async function ready(url: string): Promise<void> {
    const deadline = performance.now() + READY_TIMEOUT_MS;
    while (!exited && performance.now() < deadline) {
      try {
        await (await fetch(`${url}/`, { signal: AbortSignal.timeout(1_000) })).body?.cancel();
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    const how = exited ? `it exited (${await exit})` : `no answer after ${READY_TIMEOUT_MS} ms`;
    await stop();
    throw new Error(`Cannot start ${name}: ${how}${stderr.trim() ? `; its stderr:\n${stderr.trim()}` : ""}`);
  }
  return { ready, stop };
}
