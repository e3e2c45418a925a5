// Helpers for the ReadRealm book chat tests (chat.test.mjs, chat-restart.test.mjs): spawning the
// `readrealm-chat` binary on a fresh temporary data dir, socket.io-client factories for the three
// transport configurations, an event recorder per client, and timeout-bounded waits.
//
// CHAT_SERVER_START="tools/baselines/node/start.sh" (a command, relative to the repository root or
// absolute, with optional leading arguments) runs the same tests against another server that
// implements docs/API.md (the baselines in tools/baselines/): it is started as
// `COMMAND --listen 127.0.0.1:0 [chat flags]` and must print `listening on 127.0.0.1:PORT`.
// Our own flags it cannot honour (--data-dir, --shards) are not passed; tests that need features
// only readrealm-chat has (a store that can fail, restarts on the same data dir) are skipped,
// each with `skipUnlessOwnServer(reason)`.
//
// Nothing here may hang: every wait is bounded (WAIT_MS unless told otherwise).

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

import { CONFIGS, WAIT_MS, ready, sleep, waitFor, waitForListeningPort, waitUntil, withTimeout } from "./helpers.mjs";

export { CONFIGS, WAIT_MS, sleep, waitFor, waitUntil, withTimeout };

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..", "..");

/** ISO-8601 UTC with milliseconds, as `createdAt`, `updatedAt` and `timestamp` must be. */
export const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
/** A Message `_id`: 24 lowercase hex characters. */
export const OBJECT_ID = /^[0-9a-f]{24}$/;
/** The exact key set of a Message. */
export const MESSAGE_KEYS = ["_id", "bookId", "content", "createdAt", "updatedAt", "userId", "username"];
/** How long to keep listening for duplicates / strays after everything expected has arrived. */
export const GRACE_MS = 300;

/** The external server command (CHAT_SERVER_START), or null when testing readrealm-chat. */
export const EXTERNAL_SERVER = process.env.CHAT_SERVER_START?.trim() || null;

/**
 * Test options that skip a test (or suite) when the tests target an external server: for
 * behaviour only readrealm-chat has. `reason` says which feature it needs.
 */
export function skipUnlessOwnServer(reason) {
  return EXTERNAL_SERVER ? { skip: `needs readrealm-chat itself: ${reason} (CHAT_SERVER_START=${EXTERNAL_SERVER})` } : {};
}

/** The argv of CHAT_SERVER_START: the first word resolved against the repository root. */
function externalCommand() {
  const [cmd, ...pre] = EXTERNAL_SERVER.split(/\s+/);
  const resolved = path.isAbsolute(cmd) || !cmd.includes("/") ? cmd : path.join(repoRoot, cmd);
  return [resolved, ...pre];
}

export function chatBinary() {
  const dir = process.env.READREALM_BIN_DIR || path.join(repoRoot, "target", "release");
  return path.join(dir, "readrealm-chat");
}

/** A fresh, empty temporary directory for the server's store. */
export function makeDataDir() {
  return fs.mkdtemp(path.join(os.tmpdir(), "readrealm-chat-test-"));
}

export async function removeDir(dir) {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
}

/** `{ messageRate: 1000 }` → `["--message-rate", "1000"]`. */
function flagArgs(flags) {
  const args = [];
  for (const [name, value] of Object.entries(flags)) {
    if (value === undefined || value === null) continue;
    const flag = name.startsWith("--") ? name : `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    args.push(flag, String(value));
  }
  return args;
}

/**
 * Starts `readrealm-chat --listen 127.0.0.1:0 --data-dir DIR --shards 2 [flags]` and resolves once
 * it printed `listening on 127.0.0.1:PORT`.
 *
 * - `dataDir`: reuse this directory (it is then NOT removed by stop()/kill9(); the caller owns it).
 *   Without it a fresh temporary dir is created and removed when the server is stopped.
 * - `flags`: extra flags, e.g. `{ messageRate: 1000, "max-rooms": 3 }`.
 * - `fileSizeLimit`: RLIMIT_FSIZE in bytes for the server process (SIGXFSZ ignored), so that the
 *   store's writes start to fail once its files reach that size.
 *
 * Returns `{ url, port, dataDir, pid, stdout(), stderr(), exited, stop(), kill9() }`.
 */
export async function startChatServer({ shards = 2, dataDir, flags = {}, fileSizeLimit } = {}) {
  if (EXTERNAL_SERVER) {
    if (dataDir !== undefined || fileSizeLimit !== undefined) {
      throw new Error(`CHAT_SERVER_START=${EXTERNAL_SERVER}: dataDir and fileSizeLimit need readrealm-chat (skip this test)`);
    }
    return startExternalServer(flags);
  }
  const bin = chatBinary();
  if (!existsSync(bin)) {
    throw new Error(`${bin} not found: build it (cargo build --release) or set READREALM_BIN_DIR`);
  }
  const ownsDir = !dataDir;
  const dir = dataDir ?? (await makeDataDir());
  const args = [
    "--listen",
    "127.0.0.1:0",
    "--data-dir",
    dir,
    "--shards",
    String(shards),
    ...flagArgs(flags),
  ];
  // Hermetic: no READREALM_* settings leak in from the caller's environment.
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("READREALM_")) env[k] = v;

  let proc;
  if (fileSizeLimit !== undefined) {
    // An ignored signal stays ignored across exec, so the server gets EFBIG instead of dying.
    // `ulimit -f` counts 512-byte blocks in dash; `exec` keeps the PID the server's.
    const blocks = Math.max(1, Math.floor(fileSizeLimit / 512));
    proc = spawn(
      "/bin/sh",
      ["-c", `trap '' XFSZ; ulimit -f ${blocks} && exec "$0" "$@"`, bin, ...args],
      { stdio: ["ignore", "pipe", "pipe"], env },
    );
  } else {
    proc = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env });
  }

  let stdout = "";
  let stderr = "";
  let exited = false;
  let exitInfo = null;
  const exitPromise = new Promise((resolve) =>
    proc.once("exit", (code, signal) => {
      exited = true;
      exitInfo = { code, signal };
      resolve(exitInfo);
    }),
  );
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (chunk) => {
    stderr += chunk;
    if (process.env.SERVER_LOG) process.stderr.write(`[chat-server] ${chunk}`);
  });
  proc.stdout.setEncoding("utf8");

  let port;
  try {
    port = await waitForListeningPort(proc, "readrealm-chat", 20_000, () => stderr);
  } catch (e) {
    if (!exited) {
      proc.kill("SIGKILL");
      await exitPromise;
    }
    if (ownsDir) await removeDir(dir);
    throw e;
  }
  // Keep draining stdout so the server never blocks on a full pipe.
  proc.stdout.on("data", (chunk) => {
    stdout += chunk;
  });

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    dataDir: dir,
    pid: proc.pid,
    stdout: () => stdout,
    stderr: () => stderr,
    get exited() {
      return exited;
    },
    get exitInfo() {
      return exitInfo;
    },
    /** SIGTERM, then SIGKILL after 5 s; removes the data dir if this server created it. */
    async stop() {
      if (!exited) {
        proc.kill("SIGTERM");
        const timer = setTimeout(() => {
          if (!exited) proc.kill("SIGKILL");
        }, 5000);
        await exitPromise;
        clearTimeout(timer);
      }
      if (ownsDir) await removeDir(dir);
      return exitInfo;
    },
    /** SIGKILL at once (a crash: no graceful shutdown). Keeps the data dir. */
    async kill9() {
      if (!exited) proc.kill("SIGKILL");
      await withTimeout(exitPromise, 5000, "the server process to exit after SIGKILL");
      return exitInfo;
    },
    /** Removes the data dir if this server created it (after kill9). */
    async cleanup() {
      if (!exited) await this.stop();
      if (ownsDir) await removeDir(dir);
    },
  };
}

/**
 * Starts CHAT_SERVER_START with `--listen 127.0.0.1:0` and the chat flags; the same handle as
 * startChatServer (dataDir null). A start script may build or install first: up to 10 minutes.
 */
async function startExternalServer(flags) {
  const [bin, ...pre] = externalCommand();
  const args = [...pre, "--listen", "127.0.0.1:0", ...flagArgs(flags)];
  const proc = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], cwd: repoRoot });
  let stdout = "";
  let stderr = "";
  let exited = false;
  let exitInfo = null;
  const exitPromise = new Promise((resolve) =>
    proc.once("exit", (code, signal) => {
      exited = true;
      exitInfo = { code, signal };
      resolve(exitInfo);
    }),
  );
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (chunk) => {
    stderr += chunk;
    if (process.env.SERVER_LOG) process.stderr.write(`[external-server] ${chunk}`);
  });
  proc.stdout.setEncoding("utf8");
  let port;
  try {
    port = await waitForListeningPort(proc, EXTERNAL_SERVER, 600_000, () => stderr);
  } catch (e) {
    if (!exited) {
      proc.kill("SIGKILL");
      await exitPromise;
    }
    throw e;
  }
  proc.stdout.on("data", (chunk) => {
    stdout += chunk;
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    dataDir: null,
    pid: proc.pid,
    stdout: () => stdout,
    stderr: () => stderr,
    get exited() {
      return exited;
    },
    get exitInfo() {
      return exitInfo;
    },
    async stop() {
      if (!exited) {
        proc.kill("SIGTERM");
        const timer = setTimeout(() => {
          if (!exited) proc.kill("SIGKILL");
        }, 5000);
        await exitPromise;
        clearTimeout(timer);
      }
      return exitInfo;
    },
    async kill9() {
      if (!exited) proc.kill("SIGKILL");
      await withTimeout(exitPromise, 5000, "the server process to exit after SIGKILL");
      return exitInfo;
    },
    async cleanup() {
      if (!exited) await this.stop();
    },
  };
}

/**
 * Records everything a client receives: every event (via onAny) in arrival order, and every
 * acknowledgement packet id (to detect a request answered more than once).
 */
export class Recorder {
  constructor(socket) {
    this.socket = socket;
    this.events = []; // { event, args }
    this.ackIds = new Map(); // ack id → number of ACK packets received
    socket.onAny((event, ...args) => this.events.push({ event, args }));
    // socket.io-client's Manager emits "packet" for every decoded Socket.IO packet.
    socket.io.on("packet", (packet) => {
      if (packet.type === 3 || packet.type === 6) {
        this.ackIds.set(packet.id, (this.ackIds.get(packet.id) ?? 0) + 1);
      }
    });
  }

  /** The first argument of every received `event`, in order. */
  of(event) {
    return this.events.filter((e) => e.event === event).map((e) => e.args[0]);
  }

  count(event) {
    let n = 0;
    for (const e of this.events) if (e.event === event) n++;
    return n;
  }

  /** Ack ids answered more than once. */
  duplicateAcks() {
    return [...this.ackIds].filter(([, n]) => n > 1).map(([id, n]) => `${id}×${n}`);
  }

  /** Waits until at least `n` `event`s have arrived; resolves with `of(event)`. */
  async waitCount(event, n, ms = WAIT_MS) {
    await waitUntil(() => this.count(event) >= n, ms, `${n} "${event}" event(s) (have ${this.count(event)})`);
    return this.of(event);
  }

  /** Waits until some received `event` satisfies `pred`; resolves with its first argument. */
  async waitMatch(event, pred, ms = WAIT_MS, label = `a matching "${event}"`) {
    let found;
    await waitUntil(
      () => {
        found = this.events.find((e) => e.event === event && pred(e.args[0]));
        return found !== undefined;
      },
      ms,
      label,
    );
    return found.args[0];
  }

  /** Forgets what was received so far. */
  clear() {
    this.events.length = 0;
  }
}

let roundRobin = 0;

/** The next client configuration in turn, so that the tests spread over all three transports. */
export function nextConfig() {
  return CONFIGS[roundRobin++ % CONFIGS.length];
}

export const configByKey = (key) => CONFIGS.find((c) => c.key === key);

/**
 * Creates independent chat clients (`forceNew`, `reconnection: false`) and closes them all at the
 * end. Every socket gets a `Recorder` as `socket.rec` and a `socket.config`.
 */
export class ChatClients {
  constructor(url) {
    this.url = url;
    this.sockets = new Set();
  }

  create(config = nextConfig(), extra = {}) {
    const socket = io(this.url, {
      forceNew: true,
      reconnection: false,
      timeout: WAIT_MS,
      ...config.opts,
      ...extra,
    });
    socket.config = config;
    socket.rec = new Recorder(socket);
    this.sockets.add(socket);
    return socket;
  }

  /** A connected client (for the default configuration: connected and upgraded to websocket). */
  async connect(config = nextConfig(), extra = {}) {
    const socket = this.create(config, extra);
    await ready(socket, config);
    return socket;
  }

  /** `n` connected clients, configurations taken in turn (or from `configs`). */
  connectMany(n, configs) {
    return Promise.all(
      Array.from({ length: n }, (_, i) => this.connect(configs ? configs[i % configs.length] : nextConfig())),
    );
  }

  /** Any request answered more than once, over all clients (`client: ids`). */
  duplicateAcks() {
    const out = [];
    for (const s of this.sockets) {
      const d = s.rec.duplicateAcks();
      if (d.length) out.push(`${s.config.key}: ${d.join(", ")}`);
    }
    return out;
  }

  closeAll() {
    for (const socket of this.sockets) {
      try {
        socket.disconnect();
        socket.io.engine?.close();
        socket.removeAllListeners();
      } catch {
        // already closed
      }
    }
    this.sockets.clear();
  }
}

/** Emits `event` (with `args`, possibly none) with an ack callback; resolves with the answer. */
export async function request(socket, event, ...args) {
  try {
    return await socket.timeout(WAIT_MS).emitWithAck(event, ...args);
  } catch (e) {
    throw new Error(`no ack for ${event} within ${WAIT_MS} ms (${socket.config?.key}): ${e.message}`);
  }
}

/**
 * `joinRoom` with an ack; resolves with `{ ack, previous }` once both the ack and the
 * `previousMessages` it causes have arrived (in whatever order the server sends them).
 */
export async function join(socket, payload) {
  const before = socket.rec.count("previousMessages");
  const ack = await request(socket, "joinRoom", payload);
  if (!ack?.ok) return { ack, previous: undefined };
  const all = await socket.rec.waitCount("previousMessages", before + 1);
  return { ack, previous: all[before] };
}

/** `chatMessage` with an ack; resolves with the ack. */
export function post(socket, payload) {
  return request(socket, "chatMessage", payload);
}

/** `leaveRoom` with an ack; resolves with the ack. */
export function leave(socket, payload) {
  return request(socket, "leaveRoom", payload);
}

/** Fails unless `ack` is `{ ok: false, error: { code, message } }` with that code. */
export function assertError(assert, ack, code, messagePattern, label = "") {
  const where = label ? ` (${label})` : "";
  assert.equal(typeof ack, "object", `ack is an object${where}: ${JSON.stringify(ack)}`);
  assert.notEqual(ack, null, `ack is not null${where}`);
  assert.deepEqual(Object.keys(ack).sort(), ["error", "ok"], `error ack has exactly ok and error${where}: ${JSON.stringify(ack)}`);
  assert.equal(ack.ok, false, `ok is false${where}: ${JSON.stringify(ack)}`);
  assert.deepEqual(Object.keys(ack.error ?? {}).sort(), ["code", "message"], `error has code and message${where}: ${JSON.stringify(ack)}`);
  assert.equal(ack.error.code, code, `error code${where}: ${JSON.stringify(ack)}`);
  assert.equal(typeof ack.error.message, "string", `error message is a string${where}`);
  assert.ok(ack.error.message.length > 0, `error message is not empty${where}`);
  if (messagePattern) {
    assert.match(ack.error.message, messagePattern, `error message names the field${where}: ${JSON.stringify(ack)}`);
  }
}

/** Fails unless `m` has exactly the Message shape, and matches `expected` on the given fields. */
export function assertMessage(assert, m, expected = {}) {
  assert.equal(typeof m, "object", `message is an object: ${JSON.stringify(m)}`);
  assert.notEqual(m, null);
  assert.deepEqual(Object.keys(m).sort(), MESSAGE_KEYS, `exactly the Message keys: ${JSON.stringify(m)}`);
  assert.match(m._id, OBJECT_ID, `_id is 24 lowercase hex: ${JSON.stringify(m._id)}`);
  assert.equal(typeof m.bookId, "number", `bookId is a JSON number: ${JSON.stringify(m.bookId)}`);
  assert.equal(typeof m.userId, "string", "userId is a string");
  assert.equal(typeof m.username, "string", "username is a string");
  assert.equal(typeof m.content, "string", "content is a string");
  assert.match(m.createdAt, ISO_MS, `createdAt is ISO-8601 UTC with ms: ${m.createdAt}`);
  assert.match(m.updatedAt, ISO_MS, `updatedAt is ISO-8601 UTC with ms: ${m.updatedAt}`);
  assert.equal(m.createdAt, m.updatedAt, "createdAt === updatedAt");
  for (const [k, v] of Object.entries(expected)) {
    assert.deepEqual(m[k], v, `message.${k}`);
  }
}

/** Fails unless `ev` is `{ username, timestamp }` with an ISO-8601 ms UTC timestamp. */
export function assertPresence(assert, ev, username) {
  assert.deepEqual(Object.keys(ev ?? {}).sort(), ["timestamp", "username"], `presence payload keys: ${JSON.stringify(ev)}`);
  assert.equal(ev.username, username);
  assert.match(ev.timestamp, ISO_MS, `timestamp is ISO-8601 UTC with ms: ${ev.timestamp}`);
  const t = Date.parse(ev.timestamp);
  assert.ok(Math.abs(t - Date.now()) < 60_000, `timestamp ${ev.timestamp} is about now`);
}

/** `_id`s are fixed-width lowercase hex, so string order is numeric order. */
export const byIdAsc = (a, b) => (a._id < b._id ? -1 : a._id > b._id ? 1 : 0);

export function assertStrictlyIncreasingIds(assert, list, label) {
  for (let i = 1; i < list.length; i++) {
    assert.ok(
      list[i - 1]._id < list[i]._id,
      `${label}: _id ${list[i]._id} at ${i} does not sort after ${list[i - 1]._id}`,
    );
  }
}

let uniq = 0;
const runTag = `${process.pid.toString(36)}${Date.now().toString(36)}`;

/** A user identity unique to this run. */
export function newUser(name = "reader") {
  uniq++;
  return { userId: `u-${runTag}-${uniq}`, username: `${name}-${uniq}` };
}

let bookCounter = 1000 + Math.floor(Math.random() * 1000) * 1000;

/** A book id no other test in this process uses. */
export function newBook() {
  return ++bookCounter;
}
