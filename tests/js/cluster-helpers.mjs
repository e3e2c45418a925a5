// Helpers for the cluster-mode tests (cluster.test.mjs, issue 13): a real `redis-server` started
// on a free loopback port in its own temporary directory with the cluster's durability settings
// (`--appendonly yes --appendfsync always --save ''`), killable with SIGKILL and restartable on
// the same port from the same AOF; `readrealm-chat` nodes joined to it (`--cluster-redis`), each
// on its own data directory, restartable on that directory; a node run to its exit (one that
// must refuse to start); `readrealm-chat backup`; `/health`; a room's whole history by
// `loadHistory` pages; and the nodes' and Redis's logs for a failing test's message.
//
// Nothing here may hang: every wait is bounded. Nothing here decides what a test expects.

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";

import { chatBinary, makeDataDir, removeDir, request, startChatServer, withTimeout } from "./chat-helpers.mjs";

/** Why the cluster tests cannot run here (`redis-server` not on PATH), or null when they can. */
export function redisMissing() {
  const found = spawnSync("/bin/sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  if (found.status === 0 && found.stdout.trim()) return null;
  return "redis-server is not on PATH: the cluster tests need a real Redis (tools/setup.sh installs Debian's redis-server; tools/test.sh runs it first)";
}

/** A free TCP port on 127.0.0.1 (free when asked: the caller binds it soon after). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Whether a Redis on `port` answers `PING` with `+PONG` within `ms`. */
function ping(port, ms = 500) {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let got = "";
    const done = (ok) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      got += chunk.toString("latin1");
      if (got.includes("\r\n")) done(got.startsWith("+PONG"));
    });
    socket.on("error", () => done(false));
  });
}

/**
 * Starts `redis-server` on a free loopback port with `--appendonly yes --appendfsync always
 * --save ''` in a fresh temporary directory (log in `redis.log` there), and resolves once it
 * answers PING (10 s at most). Returns `{ port, url, dir, pid, log(), kill9(), pause(), resume(),
 * restart(), stop() }`: `kill9` is a crash (SIGKILL, nothing flushed beyond what `appendfsync
 * always` already did); `pause`/`resume` are SIGSTOP/SIGCONT;
 * `restart` starts it again on the same port from the same directory (its AOF); `stop` kills it
 * and removes the directory.
 */
export async function startRedis() {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "readrealm-redis-test-"));
  const port = await freePort();
  const redis = { port, url: `redis://127.0.0.1:${port}`, dir, pid: null, proc: null, exit: null };

  const spawnIt = async () => {
    const proc = spawn(
      "redis-server",
      [
        "--port", String(port),
        "--bind", "127.0.0.1",
        "--appendonly", "yes",
        "--appendfsync", "always",
        "--save", "",
        "--dir", dir,
        "--daemonize", "no",
        "--logfile", "redis.log",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", (chunk) => (stderr += chunk));
    redis.proc = proc;
    redis.pid = proc.pid;
    redis.exit = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
    let exited = null;
    redis.exit.then((info) => (exited = info));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`redis-server exited at start (${JSON.stringify(exited)}): ${stderr}${await redis.log()}`);
      if (await ping(port)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    proc.kill("SIGKILL");
    throw new Error(`redis-server on port ${port} never answered PING: ${stderr}${await redis.log()}`);
  };

  redis.log = async () => {
    try {
      return await fs.readFile(path.join(dir, "redis.log"), "utf8");
    } catch {
      return "";
    }
  };
  redis.kill9 = async () => {
    if (!redis.proc) return;
    redis.proc.kill("SIGKILL");
    await withTimeout(redis.exit, 5000, "redis-server to exit after SIGKILL");
    redis.proc = null;
  };
  /** SIGSTOP: Redis holds its connections open and answers nothing (a hung server). */
  redis.pause = () => redis.proc?.kill("SIGSTOP");
  /** SIGCONT after `pause`: it goes on with whatever its clients sent meanwhile. */
  redis.resume = () => redis.proc?.kill("SIGCONT");
  redis.restart = async () => {
    await redis.kill9();
    await spawnIt();
  };
  redis.stop = async () => {
    await redis.kill9();
    await removeDir(dir);
  };

  await spawnIt();
  return redis;
}

/** `{ clusterNodeTtl: 1500 }` → `["--cluster-node-ttl", "1500"]` (as chat-helpers does). */
function flagArgs(flags) {
  const args = [];
  for (const [name, value] of Object.entries(flags)) {
    if (value === undefined || value === null) continue;
    args.push(name.startsWith("--") ? name : `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, String(value));
  }
  return args;
}

/** The log level the nodes run at (`CLUSTER_LOG`, default `debug`: printed when a test fails). */
const NODE_LOG = process.env.CLUSTER_LOG || "debug";

/**
 * Starts one cluster node: `readrealm-chat --listen 127.0.0.1:0 --shards 2 --data-dir DIR
 * --cluster-redis URL [flags]` and resolves once it printed `listening on …` (which a node does
 * once it has caught up with the log). `dataDir` is kept (the caller owns it: restarts reuse it).
 * Returns startChatServer's handle (`url`, `port`, `dataDir`, `stderr()`, `stop()`, `kill9()`, …).
 */
export function startNode(redis, dataDir, flags = {}) {
  return startChatServer({ shards: 2, dataDir, flags: { log: NODE_LOG, clusterRedis: redis.url, ...flags } });
}

/**
 * Runs a node that is expected to exit by itself (one that must refuse to start): resolves with
 * `{ code, signal, stdout, stderr }` once it exits; if it is still running after `ms` (it
 * started after all), it is killed and `code` is null with `timedOut: true`.
 */
export function runNodeToExit(redis, dataDir, flags = {}, ms = 15_000) {
  const args = [
    "--listen", "127.0.0.1:0",
    "--data-dir", dataDir,
    "--shards", "2",
    ...flagArgs({ log: NODE_LOG, clusterRedis: redis.url, ...flags }),
  ];
  return runBinary(args, ms);
}

/** `readrealm-chat backup --data-dir FROM --to TO`: resolves with `{ code, stdout, stderr }`. */
export function backup(from, to, ms = 30_000) {
  return runBinary(["backup", "--data-dir", from, "--to", to], ms);
}

function runBinary(args, ms) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("READREALM_")) env[k] = v;
  const proc = spawn(chatBinary(), args, { stdio: ["ignore", "pipe", "pipe"], env });
  let stdout = "";
  let stderr = "";
  proc.stdout.setEncoding("utf8");
  proc.stderr.setEncoding("utf8");
  proc.stdout.on("data", (c) => (stdout += c));
  proc.stderr.on("data", (c) => (stderr += c));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      resolve({ code: null, signal: "SIGKILL", stdout, stderr, timedOut: true });
    }, ms);
    proc.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.once("exit", (code, signal) => {
      clearTimeout(timer);
      // Let the pipes drain what the process wrote before it exited.
      setImmediate(() => resolve({ code, signal, stdout, stderr, timedOut: false }));
    });
  });
}

/**
 * A Redis and `n` nodes on it, each on its own fresh data directory, all with `flags`.
 * `nodes[i]` is replaced by `restart(i)`; `logs()` gives every node's stderr tail and Redis's
 * log (for a failing test's message); `stop()` stops everything and removes the directories.
 */
export async function startCluster(n, flags = {}) {
  const redis = await startRedis();
  const cluster = { redis, flags, dirs: [], nodes: [], retired: [] };
  try {
    for (let i = 0; i < n; i++) cluster.dirs.push(await makeDataDir());
    // One after the other: a node's start checks and records the partition count in Redis.
    for (let i = 0; i < n; i++) cluster.nodes.push(await startNode(redis, cluster.dirs[i], flags));
  } catch (e) {
    await stopCluster(cluster);
    throw e;
  }
  /** Starts node `i` again on its data directory (it must have stopped or been killed). */
  cluster.restart = async (i, extra = {}) => {
    if (cluster.nodes[i] && !cluster.nodes[i].exited) throw new Error(`node ${i} is still running`);
    if (cluster.nodes[i]) cluster.retired.push({ i, node: cluster.nodes[i] });
    cluster.nodes[i] = null;
    cluster.nodes[i] = await startNode(redis, cluster.dirs[i], { ...flags, ...extra });
    return cluster.nodes[i];
  };
  cluster.logs = () => clusterLogs(cluster);
  cluster.stop = () => stopCluster(cluster);
  return cluster;
}

async function clusterLogs(cluster) {
  const tail = (text, n = 6000) => (text.length > n ? `…${text.slice(-n)}` : text);
  const parts = [];
  for (const { i, node } of cluster.retired) parts.push(`--- node ${i} (an earlier run, ${JSON.stringify(node.exitInfo)}) stderr:\n${tail(node.stderr())}`);
  for (const [i, node] of cluster.nodes.entries()) {
    if (node) parts.push(`--- node ${i} (${node.url}, ${node.exited ? `exited ${JSON.stringify(node.exitInfo)}` : "running"}) stderr:\n${tail(node.stderr())}`);
  }
  parts.push(`--- redis-server (${cluster.redis.url}) redis.log:\n${tail(await cluster.redis.log(), 3000)}`);
  return parts.join("\n");
}

async function stopCluster(cluster) {
  await Promise.all(cluster.nodes.map((node) => node?.stop()));
  await cluster.redis.stop();
  for (const dir of cluster.dirs) await removeDir(dir);
}

/**
 * Runs `body`; if it throws, prints the cluster's logs (every node's stderr tail, Redis's log)
 * to stderr before rethrowing, so a failure shows what the nodes said.
 */
export async function withLogs(getCluster, body) {
  try {
    return await body();
  } catch (e) {
    const cluster = getCluster();
    if (cluster) console.error(`\n=== cluster logs for the failure: ${e.message.split("\n")[0]}\n${await cluster.logs()}\n=== end of cluster logs`);
    throw e;
  }
}

/** `GET /health` of a node, parsed (throws on a non-JSON answer). */
export async function health(node) {
  const res = await fetch(`${node.url}/health`);
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`/health of ${node.url} is not JSON (${res.status}): ${text.slice(0, 300)}`);
  }
}

/**
 * A room's whole history as `loadHistory` serves it to `socket` (which must have joined it):
 * every page from the newest back until `hasMore` is false, returned oldest first.
 */
export async function fullHistory(socket, bookId) {
  const newestFirst = [];
  let before;
  for (let page = 0; page < 1000; page++) {
    const ack = await request(socket, "loadHistory", before === undefined ? { bookId, limit: 100 } : { bookId, before, limit: 100 });
    if (!ack?.ok) throw new Error(`loadHistory (${socket.config?.key}): ${JSON.stringify(ack)}`);
    newestFirst.push(...ack.messages);
    if (!ack.hasMore) return newestFirst.reverse();
    if (ack.messages.length === 0) throw new Error("loadHistory: hasMore with an empty page");
    before = ack.messages[ack.messages.length - 1]._id;
  }
  throw new Error("loadHistory: more than 1000 pages");
}
