// Shared helpers for the socket.io-client test suite: spawning `protocol-testserver`, creating
// independent clients for each transport configuration, and timeout-bounded waits.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..", "..");

/** Default bound for any single wait, in milliseconds. */
export const WAIT_MS = 5000;

/** The three client configurations every behaviour is checked with. */
export const CONFIGS = [
  { name: "default (polling then websocket upgrade)", key: "default", opts: {}, upgrades: true },
  { name: "websocket-only", key: "websocket", opts: { transports: ["websocket"] }, upgrades: false },
  { name: "polling-only", key: "polling", opts: { transports: ["polling"] }, upgrades: false },
];

export function serverBinary() {
  const dir = process.env.READREALM_BIN_DIR || path.join(repoRoot, "target", "release");
  return path.join(dir, "protocol-testserver");
}

/**
 * Starts `protocol-testserver` on a free loopback port and resolves once it printed
 * `listening on 127.0.0.1:PORT`. Returns `{ url, port, stderr(), stop() }`.
 */
export async function startServer({ shards = 2, pingInterval, pingTimeout } = {}) {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(
      `${bin} not found: run \`cargo build --release --bin protocol-testserver\` or set READREALM_BIN_DIR`,
    );
  }
  const args = ["--listen", "127.0.0.1:0", "--shards", String(shards)];
  if (pingInterval !== undefined) args.push("--ping-interval", String(pingInterval));
  if (pingTimeout !== undefined) args.push("--ping-timeout", String(pingTimeout));
  const proc = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (chunk) => {
    stderr += chunk;
    if (process.env.SERVER_LOG) process.stderr.write(`[server] ${chunk}`);
  });
  proc.stdout.setEncoding("utf8");

  let port;
  try {
    port = await waitForListeningPort(proc, "server", 10_000, () => stderr);
  } catch (e) {
    proc.kill("SIGKILL");
    throw e;
  }
  // Keep draining stdout so the server never blocks on a full pipe.
  proc.stdout.on("data", () => {});

  let exited = false;
  proc.on("exit", () => {
    exited = true;
  });

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    stderr: () => stderr,
    get exited() {
      return exited;
    },
    async stop() {
      if (exited) return;
      const done = new Promise((resolve) => proc.once("exit", resolve));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 2000);
      await done;
      clearTimeout(timer);
    },
  };
}

/** Rejects with a descriptive error if `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, label) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${label}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves with the argument list of the next `event` on `emitter`; rejects after `ms`. */
export function waitFor(emitter, event, ms = WAIT_MS) {
  let handler;
  const p = new Promise((resolve) => {
    handler = (...args) => resolve(args);
    emitter.once(event, handler);
  });
  return withTimeout(p, ms, `"${event}"`).finally(() => emitter.off(event, handler));
}

/** Resolves when `predicate()` becomes true (polled every 10 ms); rejects after `ms`. */
export async function waitUntil(predicate, ms, label) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${label}`);
    await sleep(10);
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Tracks every socket a test creates so that all of them (and their managers' engines) are closed
 * afterwards, whatever the outcome.
 */
export class Clients {
  constructor(url) {
    this.url = url;
    this.sockets = new Set();
  }

  /** A new independent client (`forceNew`, no automatic reconnection) for namespace `nsp`. */
  create(config, nsp = "/", extra = {}) {
    const socket = io(this.url + (nsp === "/" ? "" : nsp), {
      forceNew: true,
      reconnection: false,
      timeout: WAIT_MS,
      ...config.opts,
      ...extra,
    });
    this.sockets.add(socket);
    return socket;
  }

  /** Another namespace on the same manager (multiplexed over the same Engine.IO connection). */
  multiplex(socket, nsp, extra = {}) {
    // With autoConnect (the default) the new socket sends its CONNECT by itself.
    const other = socket.io.socket(nsp, extra);
    this.sockets.add(other);
    return other;
  }

  /** Creates a client and waits until it is connected (and, for `default`, upgraded). */
  async connect(config, nsp = "/", extra = {}) {
    const socket = this.create(config, nsp, extra);
    await ready(socket, config);
    return socket;
  }

  closeAll() {
    for (const socket of this.sockets) {
      try {
        socket.removeAllListeners();
        socket.disconnect();
        socket.io.engine?.close();
      } catch {
        // already closed
      }
    }
    this.sockets.clear();
  }
}

/**
 * Waits for `connect` (rejecting on `connect_error`), then for a default-transport client waits
 * for the engine's `upgrade` and checks that it now runs over websocket.
 */
export async function ready(socket, config, ms = WAIT_MS) {
  // Listen for the upgrade before anything else can happen on the event loop.
  const engine = socket.io.engine;
  const upgraded =
    config.upgrades && engine && engine.transport?.name !== "websocket"
      ? waitFor(engine, "upgrade", ms)
      : null;
  upgraded?.catch(() => {}); // observed below; avoid an unhandled rejection if connect fails first
  if (!socket.connected) {
    await withTimeout(
      new Promise((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
      }),
      ms,
      "connect",
    );
  }
  if (config.upgrades) {
    if (socket.io.engine.transport.name !== "websocket") {
      if (!upgraded) throw new Error("engine is not upgrading");
      await upgraded;
    }
    if (socket.io.engine.transport.name !== "websocket") {
      throw new Error(`after upgrade the transport is ${socket.io.engine.transport.name}`);
    }
  }
  return socket;
}

/** Converts whatever binary type the client decoded into a Buffer (throws if it is not binary). */
export function toBuffer(value) {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new Error(`expected binary data, got ${JSON.stringify(value)?.slice(0, 200)}`);
}

/** Bytes 0..255 repeated to `length`, so every byte value (and NUL, 0xFF, invalid UTF-8) is sent. */
export function allBytes(length = 256) {
  const buf = Buffer.alloc(length);
  for (let i = 0; i < length; i++) buf[i] = i % 256;
  return buf;
}

/**
 * Resolve with the port a server prints as `listening on 127.0.0.1:PORT` on stdout; reject
 * if it exits or fails to spawn first, or prints nothing of the kind within `timeoutMs`.
 */
export function waitForListeningPort(proc, name, timeoutMs, stderr) {
  let stdout = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${name} did not print its address within ${timeoutMs} ms; stdout=${stdout} stderr=${stderr()}`));
    }, timeoutMs);
    const onData = (chunk) => {
      stdout += chunk;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(stdout);
      if (m) {
        cleanup();
        resolve(Number(m[1]));
      }
    };
    const onExit = (code, signal) => {
      cleanup();
      reject(new Error(`${name} exited early (code=${code} signal=${signal}); stderr=${stderr()}`));
    };
    const onError = (err) => {
      cleanup();
      reject(err);
    };
    function cleanup() {
      clearTimeout(timer);
      proc.stdout.off("data", onData);
      proc.off("exit", onExit);
      proc.off("error", onError);
    }
    proc.stdout.on("data", onData);
    proc.on("exit", onExit);
    proc.on("error", onError);
  });
}
