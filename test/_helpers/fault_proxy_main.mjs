// A fault-injecting HTTP proxy for tests:
// `node fault_proxy_main.mjs --target http://127.0.0.1:PORT [--latency-ms N]`. With --latency-ms, every
// proxied request waits N ms before its rule (or plain forwarding) applies, as a distant server's would.
// Proxied traffic and a JSON admin API listen on two ports of 127.0.0.1; one JSON line,
// {"port": N, "adminPort": M}, is printed once both listen. Started and described by fault_proxy.ts.
import http from "node:http";
import { parseArgs } from "node:util";

const FAULTS = new Set(["status", "reset", "stall", "stall-body", "truncate", "delay"]);
const RULE_FIELDS = new Set(["method", "path", "fault", "status", "code", "times", "delayMs"]);
const HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect"];
const DEFAULT_CODES = { 403: "AccessDenied", 404: "NoSuchKey", 429: "SlowDown", 503: "SlowDown" };
const MESSAGES = {
  SlowDown: "Please reduce your request rate.",
  InternalError: "We encountered an internal error. Please try again.",
  ServiceUnavailable: "Service is unable to handle request.",
};

const { values } = parseArgs({
  options: { target: { type: "string" }, "latency-ms": { type: "string", default: "0" } },
});
const target = URL.canParse(values.target ?? "") ? new URL(values.target) : null;
if (target?.protocol !== "http:") {
  console.error(`fault_proxy_main.mjs: --target must be an http:// URL, got "${values.target}"`);
  process.exit(2);
}
const latencyMs = Number(values["latency-ms"]);
if (!Number.isFinite(latencyMs) || latencyMs < 0) {
  console.error(`fault_proxy_main.mjs: --latency-ms must be a number >= 0, got "${values["latency-ms"]}"`);
  process.exit(2);
}
const agent = new http.Agent({ keepAlive: true });
let rules = [];
let log = [];
let requestCount = 0;

function compileRule(raw, index) {
  const where = `rule ${index}`;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new Error(`${where} is not an object`);
  }
  for (const key of Object.keys(raw)) {
    if (!RULE_FIELDS.has(key)) throw new Error(`${where} has an unknown field "${key}"`);
  }
  if (!FAULTS.has(raw.fault)) throw new Error(`${where} has an unknown fault "${raw.fault}"`);
  for (const key of ["method", "path", "code"]) {
    if (raw[key] !== undefined && typeof raw[key] !== "string") {
      throw new Error(`${where}: ${key} is not a string`);
    }
  }
  const status = raw.status ?? 503;
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new Error(`${where}: bad status ${status}`);
  }
  const times = raw.times ?? Infinity;
  if (times !== Infinity && (!Number.isInteger(times) || times < 0)) {
    throw new Error(`${where}: bad times ${times}`);
  }
  const delayMs = raw.delayMs ?? (raw.fault === "delay" ? undefined : 0);
  if (!Number.isFinite(delayMs) || delayMs < 0) throw new Error(`${where}: "delay" needs delayMs >= 0`);
  const path = raw.path;
  const isRegex = path !== undefined && path.length >= 2 && path.startsWith("/") && path.endsWith("/");
  const regex = isRegex ? new RegExp(path.slice(1, -1)) : null;
  return {
    fault: raw.fault,
    method: raw.method?.toUpperCase(),
    matchesPath: path === undefined
      ? () => true
      : isRegex
      ? (url) => regex.test(url)
      : (url) => url.includes(path),
    status,
    code: raw.code ?? DEFAULT_CODES[status] ?? "InternalError",
    remaining: times,
    delayMs,
  };
}

function pickRule(method, url) {
  for (const rule of rules) {
    if (rule.remaining <= 0 || (rule.method !== undefined && rule.method !== method)) continue;
    if (!rule.matchesPath(url)) continue;
    rule.remaining -= 1;
    return rule;
  }
  return null;
}

function escapeXml(text) {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function sendError(res, status, code, message) {
  const requestId = `FAULTPROXY${String(++requestCount).padStart(6, "0")}`;
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${escapeXml(code)}</Code>` +
    `<Message>${escapeXml(message)}</Message><RequestId>${requestId}</RequestId></Error>`;
  res.writeHead(status, {
    "content-type": "application/xml",
    "content-length": Buffer.byteLength(body),
    "x-amz-request-id": requestId,
  });
  res.end(body);
}

function withoutHopByHop(headers) {
  const copy = { ...headers };
  for (const name of HOP_BY_HOP) delete copy[name];
  return copy;
}

function afterRequestBody(req, then) {
  req.on("end", then);
  req.resume();
}

// Sends the upstream status and headers (with the full Content-Length) and the first half of the body;
// then closes the connection ("truncate") or leaves it open and silent ("stall-body").
function sendHalf(res, upstream, body, fault) {
  const headers = withoutHopByHop(upstream.headers);
  delete headers["transfer-encoding"];
  headers["content-length"] = headers["content-length"] ?? String(body.length);
  res.writeHead(upstream.statusCode ?? 502, headers);
  res.flushHeaders();
  res.write(body.subarray(0, Math.floor(body.length / 2)), () => {
    if (fault === "truncate") res.socket?.destroy();
  });
}

function forward(req, res, fault, entry) {
  const upstreamRequest = http.request({
    protocol: target.protocol,
    hostname: target.hostname,
    port: target.port,
    method: req.method,
    path: req.url,
    headers: withoutHopByHop(req.headers),
    agent,
  });
  upstreamRequest.on("response", (upstream) => {
    if (entry) entry.status = upstream.statusCode ?? null;
    if (fault === "truncate" || fault === "stall-body") {
      const chunks = [];
      upstream.on("data", (chunk) => chunks.push(chunk));
      upstream.on("end", () => sendHalf(res, upstream, Buffer.concat(chunks), fault));
      return;
    }
    res.writeHead(upstream.statusCode ?? 502, withoutHopByHop(upstream.headers));
    upstream.pipe(res);
  });
  upstreamRequest.on("error", (error) => {
    if (res.headersSent) res.destroy();
    else sendError(res, 502, "BadGateway", `The fault proxy cannot reach ${target.origin}: ${error.message}`);
  });
  res.on("close", () => {
    if (!res.writableFinished) upstreamRequest.destroy();
  });
  req.pipe(upstreamRequest);
}

// The rule is picked, and the request logged, on arrival, so `times` and the log follow arrival order
// whatever the latency.
function handleProxied(req, res) {
  const rule = pickRule(req.method, req.url);
  const entry = { method: req.method, path: req.url, fault: rule?.fault ?? null, status: null };
  log.push(entry);
  if (latencyMs > 0) setTimeout(() => applyRule(req, res, rule, entry), latencyMs);
  else applyRule(req, res, rule, entry);
}

function applyRule(req, res, rule, entry) {
  switch (rule?.fault) {
    case "status":
      return afterRequestBody(
        req,
        () => sendError(res, rule.status, rule.code, MESSAGES[rule.code] ?? rule.code),
      );
    case "reset":
      return afterRequestBody(req, () => req.socket.resetAndDestroy());
    case "stall":
      return req.resume();
    case "delay":
      return setTimeout(() => forward(req, res, null, entry), rule.delayMs);
    default:
      return forward(req, res, rule?.fault ?? null, entry);
  }
}

function sendJson(res, status, value) {
  const body = value === undefined ? "" : JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function handleAdmin(req, res) {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const route = `${req.method} ${req.url}`;
    if (route === "GET /log") return sendJson(res, 200, log);
    if (route === "DELETE /log") return (log = [], sendJson(res, 204));
    if (route === "DELETE /rules") return (rules = [], sendJson(res, 204));
    if (route !== "PUT /rules") return sendJson(res, 404, { error: `no admin route ${route}` });
    try {
      const raw = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      if (!Array.isArray(raw)) throw new Error("the rules are not an array");
      rules = raw.map(compileRule);
      sendJson(res, 204);
    } catch (error) {
      sendJson(res, 400, { error: error.message });
    }
  });
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server.address().port));
  });
}

try {
  const port = await listen(http.createServer(handleProxied));
  const adminPort = await listen(http.createServer(handleAdmin));
  process.stdout.write(`${JSON.stringify({ port, adminPort })}\n`);
} catch (error) {
  console.error(`fault_proxy_main.mjs: cannot listen: ${error?.stack ?? error}`);
  process.exit(1);
}
