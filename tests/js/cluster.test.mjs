// Cluster mode on Redis (issue 13, "Tests"; docs/OPERATIONS.md, cluster section): one real
// `redis-server` (`--appendonly yes --appendfsync always`) and three `readrealm-chat` nodes
// (`--shards 2`, each on its own data directory) on loopback, socket.io-client 4.8 clients on
// all three transports spread over the nodes:
//
// 1. one room over three nodes: every member gets every message once, in one order equal to
//    `_id` order; every new joiner on every node gets the same history; `roomMembers` agrees
//    on every node; observers on different nodes see one sequence of
//    `userJoined`/`userLeft`/`newMessage`; a reader whose connection dropped (its node alive)
//    reconnects through a proxy (tcp-proxy.mjs, the load balancer) to another node and is
//    recovered there with exactly the messages it missed;
// 2. a node killed (SIGKILL) while writers on the other two post: every acknowledged message is
//    in the survivors' history, and in the killed node's once it restarted on its data
//    directory and caught up; its readers are seen leaving, once; a reader of the killed node
//    that reconnects (stock reconnection) through a proxy now pointing at a survivor is
//    recovered there with exactly the messages it missed (a reader in one room: from its live
//    record in Redis and its offset);
// 3. Redis killed (SIGKILL): no post acknowledged while it is down (each answered
//    `unavailable` within a bound), history still served; Redis restarted from its AOF on the
//    same port: every message acknowledged before is still in the log, and posting works again
//    with no node restarted; an outage longer than the nodes' liveness keys makes nobody still
//    connected leave; Redis hung (SIGSTOP): `unavailable` within the bound, and such a post is
//    never stored nor delivered (docs/API.md: `unavailable` means nothing was);
// 4. a node restarted after the log's retention passed refuses to start, telling the operator
//    to seed it from a live node's `readrealm-chat backup`; seeded so, it starts and catches up.
//
// Skipped as a whole when `redis-server` is not on PATH (tools/setup.sh installs it; tools/test.sh
// runs setup first and sets REQUIRE_REDIS=1, which turns the skip into a failure). On a failure
// the nodes' stderr (`--log debug`) and Redis's log are printed. Figures (times to `unavailable`,
// to seeing a dead node's readers leave, to posting again after Redis is back) are printed as
// test diagnostics.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { spawn, spawnSync } from "node:child_process";

import {
  CONFIGS,
  ChatClients,
  GRACE_MS,
  WAIT_MS,
  assertError,
  assertMessage,
  assertPresence,
  byIdAsc,
  join,
  leave,
  makeDataDir,
  newBook,
  newUser,
  post,
  removeDir,
  request,
  skipUnlessOwnServer,
  sleep,
  waitUntil,
} from "./chat-helpers.mjs";
import { backup, freePort, fullHistory, health, redisMissing, runNodeToExit, startCluster, startNode, withLogs } from "./cluster-helpers.mjs";
import { startProxy } from "./tcp-proxy.mjs";

const T = { timeout: 60_000 };
/** Posts are never rate-limited here: the tests post in bursts. */
const FLAGS = { messageRate: 1000, messageBurst: 1000 };
/** The message a node behind the log's retention exits with (issue 13). */
const SEED_HINT = "seed the data directory from a live node's `readrealm-chat backup`";

const missing = redisMissing();
const SUITE = missing ? { skip: missing } : skipUnlessOwnServer("cluster mode (--cluster-redis)");
if (missing) console.log(`# cluster.test.mjs skipped: ${missing}`);
// tools/test.sh installs redis-server and sets REQUIRE_REDIS=1: there, a missing Redis fails.
if (missing && process.env.REQUIRE_REDIS === "1") {
  test("redis-server is on PATH (REQUIRE_REDIS=1)", () => assert.fail(missing));
}

const member = (u) => ({ userId: u.userId, username: u.username });
const byUserId = (a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0);
const sorted = (list) => [...list].sort(byUserId);
const ids = (messages) => messages.map((m) => m._id);

/** joinRoom that must succeed; resolves with `{ ack, previous }`. */
async function mustJoin(socket, bookId, user) {
  const { ack, previous } = await join(socket, { bookId, ...user });
  assert.equal(ack?.ok, true, `joinRoom (${socket.config.key}): ${JSON.stringify(ack)?.slice(0, 300)}`);
  return { ack, previous };
}

/** roomMembers that must succeed; resolves with the ack. */
async function mustAskMembers(socket, bookId) {
  const ack = await request(socket, "roomMembers", { bookId });
  assert.equal(ack?.ok, true, `roomMembers (${socket.config.key}): ${JSON.stringify(ack)?.slice(0, 300)}`);
  return ack;
}

/** chatMessage that must be acknowledged `ok`; resolves with the stored message. */
async function mustPost(socket, bookId, user, content) {
  const ack = await post(socket, { bookId, ...user, content });
  assert.equal(ack?.ok, true, `chatMessage "${content}" (${socket.config.key}): ${JSON.stringify(ack)}`);
  assertMessage(assert, ack.message, { bookId, userId: user.userId, username: user.username, content });
  return ack.message;
}

/** A room's events as `kind:key` strings, in arrival order (presence by name, messages by _id). */
function roomSequence(socket) {
  const out = [];
  for (const e of socket.rec.events) {
    if (e.event === "newMessage") out.push(`newMessage:${e.args[0]._id}`);
    else if (e.event === "userJoined" || e.event === "userLeft") out.push(`${e.event}:${e.args[0].username}`);
  }
  return out;
}

/** How many `userLeft` for `username` a recorder got. */
const leftCount = (socket, username) => socket.rec.of("userLeft").filter((e) => e.username === username).length;

/**
 * Posts `chatMessage`s from `socket` one after the other (each awaited) until `state.stop`,
 * recording each acknowledged message in `acked` and anything else in `failures`.
 */
async function writeLoop(socket, bookId, user, tag, acked, failures, state) {
  for (let n = 0; !state.stop; n++) {
    const content = `${tag}-${n}`;
    try {
      const ack = await socket.timeout(WAIT_MS).emitWithAck("chatMessage", { bookId, ...user, content });
      if (ack?.ok && ack.message?.content === content) acked.push(ack.message);
      else failures.push({ content, ack });
    } catch (e) {
      failures.push({ content, error: e.message });
    }
    await sleep(10);
  }
}

describe("cluster: one room over three nodes and three transports", SUITE, () => {
  let cluster;
  before(async () => {
    cluster = await startCluster(3, FLAGS);
  });
  after(async () => {
    await cluster?.stop();
  });

  test("/health names each node, with the Redis link up", T, () =>
    withLogs(() => cluster, async () => {
      const seen = [];
      for (const [i, node] of cluster.nodes.entries()) {
        const h = await health(node);
        assert.equal(typeof h.cluster, "object", `node ${i} /health has a cluster object: ${JSON.stringify(h)}`);
        assert.notEqual(h.cluster, null);
        assert.equal(h.cluster.link, "up", `node ${i}: ${JSON.stringify(h.cluster)}`);
        assert.equal(typeof h.cluster.node, "string");
        assert.ok(h.cluster.node.length > 0);
        assert.equal(typeof h.cluster.max_lag_ms, "number", JSON.stringify(h.cluster));
        seen.push(h.cluster.node);
      }
      assert.equal(new Set(seen).size, 3, `three distinct node ids: ${JSON.stringify(seen)}`);
    }));

  test("members on every node and transport get every message once, in one order equal to _id order; new joiners on every node get the same history; roomMembers agrees on every node", T, () =>
    withLogs(() => cluster, async () => {
      const book = newBook();
      const clients = cluster.nodes.map((node) => new ChatClients(node.url));
      try {
        // Nine members: one per node and transport.
        const members = [];
        for (const [i] of cluster.nodes.entries()) {
          for (const config of CONFIGS) {
            members.push({ node: i, socket: await clients[i].connect(config), user: newUser(`n${i}-${config.key}`) });
          }
        }
        for (const m of members) await mustJoin(m.socket, book, m.user);
        // Each has heard of every later joiner: every join has crossed to every node.
        for (const [k, m] of members.entries()) await m.socket.rec.waitCount("userJoined", members.length - 1 - k);
        const everyone = sorted(members.map((m) => member(m.user)));
        for (const m of members) {
          const ack = await mustAskMembers(m.socket, book);
          assert.deepEqual(sorted(ack.members), everyone, `roomMembers on node ${m.node} (${m.socket.config.key})`);
          assert.equal(ack.memberCount, members.length);
        }

        // Everyone posts at once, 6 messages each, each awaited before the next.
        const PER = 6;
        const acked = [];
        await Promise.all(
          members.map(async (m, k) => {
            for (let n = 0; n < PER; n++) acked.push(await mustPost(m.socket, book, m.user, `m${k}-${n}`));
          }),
        );
        const order = [...acked].sort(byIdAsc);
        assert.equal(new Set(ids(order)).size, members.length * PER, "every acknowledged message has its own _id");
        for (const m of members) await m.socket.rec.waitCount("newMessage", order.length);
        await sleep(GRACE_MS);
        for (const m of members) {
          const got = m.socket.rec.of("newMessage");
          const where = `member on node ${m.node} (${m.socket.config.key})`;
          assert.deepEqual(ids(got), ids(order), `${where}: every message once, in _id order`);
          // The same message everywhere: as its sender's ack gave it, on whatever node.
          assert.deepEqual(got, order, `${where}: each message exactly as acknowledged to its sender`);
          // Each sender's messages in the order it sent them (its own, not the server's, order).
          for (let k = 0; k < members.length; k++) {
            const mine = got.filter((x) => x.content.startsWith(`m${k}-`)).map((x) => x.content);
            assert.deepEqual(mine, Array.from({ length: PER }, (_, n) => `m${k}-${n}`), `${where}: sender ${k}'s messages in its order`);
          }
        }

        // New joiners, one per node and transport: the same history everywhere.
        const newestFirst = [...order].reverse();
        const joiners = [];
        for (const [i] of cluster.nodes.entries()) {
          for (const config of CONFIGS) {
            const socket = await clients[i].connect(config);
            const user = newUser(`late-n${i}-${config.key}`);
            const { ack, previous } = await mustJoin(socket, book, user);
            const where = `joiner on node ${i} (${config.key})`;
            assert.deepEqual(previous, newestFirst.slice(0, 50), `${where}: previousMessages are the room's newest 50, newest first`);
            assert.deepEqual(await fullHistory(socket, book), order, `${where}: loadHistory pages give the whole room`);
            assert.ok(ack.members.some((x) => x.userId === user.userId), `${where}: listed in its own join`);
            joiners.push({ node: i, socket, user });
          }
        }
        for (const m of members) await m.socket.rec.waitCount("userJoined", members.length - 1 - members.indexOf(m) + joiners.length);
        const all = sorted([...members, ...joiners].map((m) => member(m.user)));
        for (const m of [...members, ...joiners]) {
          const ack = await mustAskMembers(m.socket, book);
          assert.deepEqual(sorted(ack.members), all, `roomMembers on node ${m.node} (${m.socket.config.key}) after the late joins`);
          assert.equal(ack.memberCount, all.length);
        }
      } finally {
        for (const c of clients) c.closeAll();
      }
    }));

  test("observers on different nodes see one sequence of userJoined/userLeft/newMessage while writers and joiners on all nodes act at once; each joiner's events, history and members fit it", T, () =>
    withLogs(() => cluster, async () => {
      const book = newBook();
      const clients = cluster.nodes.map((node) => new ChatClients(node.url));
      try {
        const observers = [];
        const writers = [];
        const joiners = [];
        for (let i = 0; i < 3; i++) {
          observers.push({ node: i, socket: await clients[i].connect(CONFIGS[i]), user: newUser(`obs${i}`) });
          writers.push({ node: i, socket: await clients[i].connect(CONFIGS[(i + 1) % 3]), user: newUser(`wr${i}`) });
        }
        for (let i = 0; i < 9; i++) {
          joiners.push({ node: i % 3, socket: await clients[i % 3].connect(CONFIGS[Math.floor(i / 3)]), user: newUser(`jn${i}`) });
        }
        const settled = [...observers, ...writers];
        for (const s of settled) await mustJoin(s.socket, book, s.user);
        for (const [i, s] of settled.entries()) await s.socket.rec.waitCount("userJoined", settled.length - 1 - i);
        await sleep(GRACE_MS);
        for (const s of settled) s.socket.rec.clear();

        const PER_WRITER = 10;
        const PER_JOINER = 2;
        const jitter = () => sleep(Math.floor(Math.random() * 4));
        const joinResults = new Array(joiners.length);
        await Promise.all([
          ...writers.map(async (w, i) => {
            for (let n = 0; n < PER_WRITER; n++) {
              await mustPost(w.socket, book, w.user, `w${i}-${n}`);
              await jitter();
            }
          }),
          ...joiners.map(async (j, i) => {
            await sleep(Math.floor(Math.random() * 40));
            joinResults[i] = await mustJoin(j.socket, book, j.user);
            for (let n = 0; n < PER_JOINER; n++) {
              await mustPost(j.socket, book, j.user, `j${i}-${n}`);
              await jitter();
            }
            if (i % 2 === 0) assert.deepEqual(await leave(j.socket, { bookId: book, username: j.user.username }), { ok: true });
            else j.socket.disconnect();
          }),
        ]);

        const messages = writers.length * PER_WRITER + joiners.length * PER_JOINER;
        for (const o of observers) {
          await o.socket.rec.waitCount("newMessage", messages);
          await o.socket.rec.waitCount("userJoined", joiners.length);
          await o.socket.rec.waitCount("userLeft", joiners.length);
        }
        await sleep(GRACE_MS);
        const reference = roomSequence(observers[0].socket);
        assert.equal(reference.length, messages + 2 * joiners.length, "every event once, nothing else");
        const refMessages = reference.filter((e) => e.startsWith("newMessage:")).map((e) => e.slice("newMessage:".length));
        assert.deepEqual(refMessages, [...refMessages].sort(), "the room's messages arrive in _id order");
        for (const o of observers.slice(1)) {
          assert.deepEqual(roomSequence(o.socket), reference, `observer on node ${o.node} (${o.socket.config.key}) sees the sequence the observer on node 0 sees`);
        }
        for (const w of writers) {
          assert.deepEqual(roomSequence(w.socket), reference, `writer on node ${w.node} (${w.socket.config.key}) sees the same sequence`);
        }

        for (const [i, j] of joiners.entries()) {
          const where = `joiner ${i} on node ${j.node} (${j.socket.config.key})`;
          const at = reference.indexOf(`userJoined:${j.user.username}`);
          assert.ok(at >= 0, `${where}: its userJoined is in the sequence`);
          const seen = roomSequence(j.socket);
          assert.deepEqual(seen, reference.slice(at + 1, at + 1 + seen.length), `${where}: its events continue the room's sequence right after its join`);
          for (let n = 0; n < PER_JOINER; n++) {
            assert.ok(j.socket.rec.of("newMessage").some((m) => m.content === `j${i}-${n}`), `${where}: got its own message ${n}`);
          }
          // History as of its join: the messages before its userJoined (nothing between the
          // page and its first live event is lost, nothing is given twice).
          const beforeJoin = reference.slice(0, at).filter((e) => e.startsWith("newMessage:")).map((e) => e.slice("newMessage:".length));
          assert.deepEqual(ids(joinResults[i].previous), beforeJoin.slice(-50).reverse(), `${where}: previousMessages are the room's messages before its join`);
          const present = new Set(settled.map((s) => s.user.username));
          for (const e of reference.slice(0, at)) {
            if (e.startsWith("userJoined:")) present.add(e.slice("userJoined:".length));
            if (e.startsWith("userLeft:")) present.delete(e.slice("userLeft:".length));
          }
          present.add(j.user.username);
          assert.deepEqual(joinResults[i].ack.members.map((m) => m.username).sort(), [...present].sort(), `${where}: members as of its join`);
          assert.equal(joinResults[i].ack.memberCount, present.size);
        }
      } finally {
        for (const c of clients) c.closeAll();
      }
    }));

  // Recovery across nodes for a connection that dropped while its node lives on (the node keeps
  // the reader and copies it to Redis for its window): the load balancer sends the reconnection
  // to another node, which recovers it.
  for (const [k, config] of CONFIGS.entries()) {
    test(`${config.name}: a reader whose connection dropped reconnects (stock reconnection) to another node: recovered there, with exactly the messages it missed; nobody sees it leave or join`, T, (t) =>
      withLogs(() => cluster, async () => {
        const book = newBook();
        const from = k % 3;
        const to = (k + 1) % 3;
        const writerNode = (k + 2) % 3;
        const proxy = await startProxy(cluster.nodes[from].port);
        const via = new ChatClients(proxy.url);
        const direct = new ChatClients(cluster.nodes[writerNode].url);
        const onTarget = new ChatClients(cluster.nodes[to].url);
        try {
          const reader = via.create(config, { reconnection: true });
          await new Promise((resolve, reject) => {
            reader.once("connect", resolve);
            reader.once("connect_error", reject);
          });
          const readerUser = newUser(`moving-${config.key}`);
          const writerUser = newUser("writer");
          const writer = await direct.connect(CONFIGS[(k + 1) % 3]);
          const watcher = await onTarget.connect(CONFIGS[(k + 2) % 3]);
          const watcherUser = newUser("watcher");
          await mustJoin(reader, book, readerUser);
          await mustJoin(writer, book, writerUser);
          await mustJoin(watcher, book, watcherUser);
          await reader.rec.waitCount("userJoined", 2);
          const sent = [];
          for (let n = 0; n < 3; n++) sent.push(await mustPost(writer, book, writerUser, `before-${n}`));
          await reader.rec.waitCount("newMessage", 3);
          const id = reader.id;
          const previousBefore = reader.rec.count("previousMessages");
          writer.rec.clear();
          watcher.rec.clear();

          const dropped = new Promise((resolve) => reader.once("disconnect", resolve));
          reader.io.engine.close();
          await dropped;
          // The close reaches node `from` (it keeps the reader); the reconnection attempts are
          // refused until the gap is over, then land on node `to`.
          await sleep(100);
          proxy.refuse();
          for (let n = 0; n < 4; n++) sent.push(await mustPost(writer, book, writerUser, `gap-${n}`));
          const back = new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error("no reconnection within 15000 ms")), 15_000);
            reader.once("connect", () => {
              clearTimeout(timer);
              resolve();
            });
          });
          proxy.target = cluster.nodes[to].port;
          proxy.forward();
          await back;
          t.diagnostic(`${config.key}: node ${from} → node ${to}: recovered=${reader.recovered}, same id=${reader.id === id}`);
          assert.equal(reader.recovered, true, `recovered on node ${to}`);
          assert.equal(reader.id, id, "the same socket id");
          await reader.rec.waitCount("newMessage", sent.length);
          // Newer than the gap: arrives after the replay, once.
          sent.push(await mustPost(writer, book, writerUser, "after"));
          await reader.rec.waitCount("newMessage", sent.length);
          await sleep(GRACE_MS);
          assert.deepEqual(ids(reader.rec.of("newMessage")), ids(sent), "every message once, in order: before, the gap, after");
          assert.equal(reader.rec.count("previousMessages"), previousBefore, "no previousMessages after a recovery");
          // Back in the room with its identity, on its new node: it posts without joining again.
          const mine = await mustPost(reader, book, readerUser, "I moved");
          await writer.rec.waitMatch("newMessage", (x) => x._id === mine._id, WAIT_MS, "the moved reader's post reaches the writer");
          await sleep(GRACE_MS);
          for (const [name, s] of [["writer", writer], ["watcher", watcher]]) {
            assert.equal(s.rec.count("userLeft"), 0, `the ${name} saw nobody leave`);
            assert.equal(s.rec.count("userJoined"), 0, `the ${name} saw nobody join`);
          }
          const expected = sorted([readerUser, writerUser, watcherUser].map(member));
          for (const [name, s] of [["writer", writer], ["watcher", watcher], ["moved reader", reader]]) {
            const ack = await mustAskMembers(s, book);
            assert.deepEqual(sorted(ack.members), expected, `roomMembers asked by the ${name}: the reader once`);
            assert.equal(ack.memberCount, 3);
          }
        } finally {
          via.closeAll();
          direct.closeAll();
          onTarget.closeAll();
          await proxy.close();
        }
      }));
  }
});

describe("cluster: a node killed (SIGKILL) while writers on the other two post", SUITE, () => {
  const NODE_TTL = 1500;
  let cluster;
  /** What the first test saw, for the ones after it. */
  const s = {};
  before(async () => {
    cluster = await startCluster(3, { ...FLAGS, clusterNodeTtl: NODE_TTL });
  });
  after(async () => {
    for (const c of s.clients ?? []) c.closeAll();
    for (const p of s.proxies ?? []) await p.close();
    await cluster?.stop();
  });

  test("every acknowledged message is in the survivors' history; the dead node's readers are seen leaving, once", T, (t) =>
    withLogs(() => cluster, async () => {
      const [n0, n1, n2] = cluster.nodes;
      const book = newBook();
      s.book = book;
      const clients = [n0, n1, n2].map((node) => new ChatClients(node.url));
      s.clients = clients;
      // Readers of node 2 that will not come back (their clients do not reconnect).
      const dead = [
        { socket: await clients[2].connect(CONFIGS[2]), user: newUser("dead-polling") },
        { socket: await clients[2].connect(CONFIGS[0]), user: newUser("dead-default") },
      ];
      // Readers of node 2 that reconnect by themselves (stock reconnection) through a proxy
      // that, once node 2 is dead, forwards to a survivor: one per transport.
      s.proxies = [];
      const movers = [];
      for (const [k, config] of CONFIGS.entries()) {
        const proxy = await startProxy(n2.port);
        s.proxies.push(proxy);
        const via = new ChatClients(proxy.url);
        clients.push(via);
        const socket = via.create(config, { reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 500, randomizationFactor: 0 });
        await new Promise((resolve, reject) => {
          socket.once("connect", resolve);
          socket.once("connect_error", reject);
        });
        movers.push({ socket, user: newUser(`mover-${config.key}`), proxy, survivor: k % 2, id: socket.id });
      }
      s.movers = movers;
      const observers = [
        { node: 0, socket: await clients[0].connect(CONFIGS[0]), user: newUser("obs0") },
        { node: 1, socket: await clients[1].connect(CONFIGS[1]), user: newUser("obs1") },
      ];
      const writers = [
        { node: 0, socket: await clients[0].connect(CONFIGS[1]), user: newUser("wr0") },
        { node: 1, socket: await clients[1].connect(CONFIGS[2]), user: newUser("wr1") },
      ];
      s.observers = observers;
      s.writers = writers;
      s.dead = dead;
      for (const x of [...observers, ...writers, ...dead, ...movers]) await mustJoin(x.socket, book, x.user);
      const joinedAll = observers.length + writers.length + dead.length + movers.length;
      await observers[0].socket.rec.waitCount("userJoined", joinedAll - 1);
      await observers[1].socket.rec.waitCount("userJoined", joinedAll - 2);
      for (const x of [...dead, ...movers]) await waitUntil(() => x.socket.connected, WAIT_MS, "connected");

      const acked = [];
      const failures = [];
      const state = { stop: false };
      const loops = writers.map((w, i) => writeLoop(w.socket, book, w.user, `w${i}`, acked, failures, state));
      await waitUntil(() => acked.length >= 10, WAIT_MS, "10 acknowledged posts before the kill");
      for (const m of movers) await m.socket.rec.waitCount("newMessage", 5);
      // The load balancer now sends node 2's clients to a survivor.
      for (const m of movers) m.proxy.target = cluster.nodes[m.survivor].port;
      const killed = await n2.kill9();
      s.killedAt = Date.now();
      assert.equal(killed.signal, "SIGKILL");
      s.ackedAtKill = acked.length;
      await sleep(1500);
      state.stop = true;
      await Promise.all(loops);
      assert.deepEqual(failures, [], "every post on a survivor was acknowledged ok");
      assert.ok(acked.length > s.ackedAtKill, `posts went on after the kill (${s.ackedAtKill} before, ${acked.length} in all)`);
      const order = [...acked].sort(byIdAsc);
      s.order = order;
      t.diagnostic(`acknowledged: ${acked.length} (${s.ackedAtKill} before the SIGKILL)`);

      // Survivors: every acknowledged message, in history and by loadHistory, on both.
      for (const [i, node] of [n0, n1].entries()) {
        const late = await clients[i].connect(CONFIGS[i]);
        const { previous } = await mustJoin(late, book, newUser(`late-survivor${i}`));
        assert.deepEqual(ids(previous), ids(order).reverse().slice(0, 50), `node ${i} (${node.url}): a new joiner's previousMessages`);
        assert.deepEqual(ids(await fullHistory(late, book)), ids(order), `node ${i}: loadHistory holds every acknowledged message`);
        late.disconnect();
      }
      for (const o of observers) {
        await o.socket.rec.waitCount("newMessage", order.length);
        assert.deepEqual(ids(o.socket.rec.of("newMessage")), ids(order), `observer on node ${o.node}: every acknowledged message once, in _id order`);
      }

      // The dead node's readers: seen leaving by the survivors' readers, each once.
      for (const o of observers) {
        for (const d of dead) {
          const ev = await o.socket.rec.waitMatch("userLeft", (e) => e.username === d.user.username, NODE_TTL + 8000, `observer on node ${o.node} sees ${d.user.username} leave`);
          assertPresence(assert, ev, d.user.username);
        }
      }
      t.diagnostic(`the dead node's readers were seen leaving ${Date.now() - s.killedAt} ms after the SIGKILL (--cluster-node-ttl ${NODE_TTL})`);
      await sleep(1000);
      for (const o of observers) {
        for (const d of dead) assert.equal(leftCount(o.socket, d.user.username), 1, `observer on node ${o.node}: ${d.user.username} left once`);
      }
    }));

  // Issue 13: "a reader recovers onto another node with exactly the missed messages": from its
  // live record in Redis and its offset (a reader in one room). What the clients got is
  // printed as diagnostics too.
  test("a reader of the killed node (one room) reconnecting to a survivor is recovered, with exactly the messages it missed", T, (t) =>
    withLogs(() => cluster, async () => {
      assert.ok(s.order, "the scenario above ran");
      for (const m of s.movers) {
        await waitUntil(() => m.socket.connected, 10_000, `${m.socket.config.key} mover reconnected`);
      }
      await sleep(GRACE_MS);
      const outcomes = [];
      for (const m of s.movers) {
        outcomes.push({
          transport: m.socket.config.key,
          survivor: m.survivor,
          recovered: m.socket.recovered,
          sameId: m.socket.id === m.id,
          newMessages: m.socket.rec.count("newMessage"),
          acknowledged: s.order.length,
          seenLeaving: s.observers.map((o) => leftCount(o.socket, m.user.username)),
          // Not recovered: what a post without joining again gets (a recovered one posts below).
          postWithoutJoin: m.socket.recovered ? undefined : (await post(m.socket, { bookId: s.book, ...m.user, content: "not recovered?" })).error?.code,
        });
      }
      t.diagnostic(`movers after reconnecting: ${JSON.stringify(outcomes)}`);
      for (const [i, node] of cluster.nodes.slice(0, 2).entries()) {
        const metrics = await (await fetch(`${node.url}/metrics`)).text();
        const lines = metrics.split("\n").filter((l) => l.startsWith("readrealm_recoveries_total"));
        t.diagnostic(`survivor node ${i}: ${lines.join(", ")}`);
      }
      for (const m of s.movers) {
        const where = `${m.socket.config.key} reader moved to node ${m.survivor}`;
        assert.equal(m.socket.recovered, true, `${where}: socket.recovered`);
        assert.equal(m.socket.id, m.id, `${where}: the same socket id`);
        await m.socket.rec.waitCount("newMessage", s.order.length);
        await sleep(GRACE_MS);
        // (The movers checked before it posted once each below.)
        const got = m.socket.rec.of("newMessage").filter((x) => !x.content.startsWith("back on node"));
        assert.deepEqual(ids(got), ids(s.order), `${where}: every message once, in order, across the move`);
        assert.equal(m.socket.rec.count("previousMessages"), 1, `${where}: no previousMessages after the recovery`);
        for (const o of s.observers) assert.equal(leftCount(o.socket, m.user.username), 0, `${where}: nobody saw it leave`);
        const again = await post(m.socket, { bookId: s.book, ...m.user, content: `back on node ${m.survivor}` });
        assert.equal(again.ok, true, `${where}: posts without joining again: ${JSON.stringify(again)}`);
      }
    }));

  test("the killed node restarted on its data directory catches up: every acknowledged message is in its history; rosters agree; nobody leaves twice", T, (t) =>
    withLogs(() => cluster, async () => {
      assert.ok(s.order, "the scenario above ran");
      const started = Date.now();
      const n2 = await cluster.restart(2);
      t.diagnostic(`node 2 restarted and caught up in ${Date.now() - started} ms`);
      const on2 = new ChatClients(n2.url);
      s.clients.push(on2);
      const late = await on2.connect(CONFIGS[0]);
      const lateUser = newUser("late-on-restarted");
      const { previous } = await mustJoin(late, s.book, lateUser);
      const history = await fullHistory(late, s.book);
      const historyIds = new Set(ids(history));
      const lost = s.order.filter((m) => !historyIds.has(m._id));
      assert.deepEqual(ids(lost), [], "every message acknowledged on the survivors is in the restarted node's history");
      assert.deepEqual(ids(previous), ids(history).reverse().slice(0, 50), "its previousMessages are the newest of that history");
      // The survivors and the restarted node list the same readers; the dead node's readers are
      // not among them, and nobody saw them leave a second time.
      await sleep(1000);
      const asked = [];
      for (const x of [s.observers[0], s.observers[1], { node: 2, socket: late }]) {
        asked.push({ node: x.node, members: sorted((await mustAskMembers(x.socket, s.book)).members) });
      }
      for (const a of asked.slice(1)) assert.deepEqual(a.members, asked[0].members, `roomMembers on node ${a.node} = on node ${asked[0].node}`);
      for (const d of s.dead) {
        assert.ok(!asked[0].members.some((x) => x.userId === d.user.userId), `${d.user.username} is no longer listed`);
        for (const o of s.observers) assert.equal(leftCount(o.socket, d.user.username), 1, `observer on node ${o.node}: ${d.user.username} left once`);
      }
      for (const x of [...s.observers, ...s.writers]) {
        assert.ok(asked[0].members.some((y) => y.userId === x.user.userId), `${x.user.username} (on a survivor) is still listed`);
      }
      assert.ok(asked[0].members.some((y) => y.userId === lateUser.userId), "the new joiner on the restarted node is listed");
      // The restarted node takes part: its post reaches a survivor's reader.
      const m = await mustPost(late, s.book, lateUser, "from the restarted node");
      await s.observers[0].socket.rec.waitMatch("newMessage", (x) => x._id === m._id, WAIT_MS, "the restarted node's post on node 0");
    }));
});

describe("cluster: Redis down", SUITE, () => {
  // Short liveness keys: an outage longer than them must not make the nodes see each other's
  // readers leave when Redis is back.
  const NODE_TTL = 1500;
  const OUTAGE_MS = 3 * NODE_TTL;
  /** The bound asserted on an `unavailable` answer (2 × the default --cluster-timeout, 1 s, and slack). */
  const BOUND_MS = 5000;
  let cluster;
  let fresh;
  before(async () => {
    cluster = await startCluster(3, { ...FLAGS, clusterNodeTtl: NODE_TTL });
  });
  after(async () => {
    for (const c of r.clients ?? []) c.closeAll();
    await fresh?.stop();
    await cluster?.stop();
  });

  /** Posts `content` from `m` and resolves with `{ ack, took }`, waiting up to BOUND_MS + 5 s. */
  async function timedPost(m, book, content) {
    const sent = Date.now();
    try {
      const ack = await m.socket.timeout(BOUND_MS + 5000).emitWithAck("chatMessage", { bookId: book, ...m.user, content });
      return { ack, took: Date.now() - sent };
    } catch (e) {
      assert.fail(`node ${m.node} (${m.socket.config.key}): no answer to "${content}" within ${BOUND_MS + 5000} ms (${e.message})`);
    }
  }

  /** Three members of a new room, one per node, each transport once; they have posted `n` rounds. */
  async function room(clients, n, tag) {
    const book = newBook();
    const members = [];
    for (const [i] of cluster.nodes.entries()) members.push({ node: i, socket: await clients[i].connect(CONFIGS[i]), user: newUser(`${tag}${i}`) });
    for (const m of members) await mustJoin(m.socket, book, m.user);
    await members[0].socket.rec.waitCount("userJoined", 2);
    const sent = [];
    for (let r = 0; r < n; r++) for (const [i, m] of members.entries()) sent.push(await mustPost(m.socket, book, m.user, `before-${i}-${r}`));
    for (const m of members) await m.socket.rec.waitCount("newMessage", sent.length);
    return { book, members, sent: [...sent].sort(byIdAsc) };
  }

  /** What the first test saw, for the ones after it. */
  const r = {};

  test("killed (SIGKILL): no post is acknowledged while it is down (each answered unavailable within 5 s); loadHistory and joins are served; /health says the link is down", T, (t) =>
    withLogs(() => cluster, async () => {
      r.clients = cluster.nodes.map((node) => new ChatClients(node.url));
      const { book, members, sent: beforeOrder } = await room(r.clients, 3, "m");
      Object.assign(r, { book, members, beforeOrder });

      await cluster.redis.kill9();
      r.downAt = Date.now();
      // Posts on every node at once, right after the kill and again once the outage has
      // lasted past the nodes' liveness keys: each answered unavailable within the bound.
      const times = [];
      for (const round of [0, 1]) {
        if (round === 1) await sleep(Math.max(0, r.downAt + OUTAGE_MS - Date.now()));
        await Promise.all(
          members.map(async (m, i) => {
            const { ack, took } = await timedPost(m, book, `while-down-${round}-${i}`);
            times.push(took);
            assertError(assert, ack, "unavailable", null, `node ${i} round ${round}`);
            assert.ok(took <= BOUND_MS, `node ${i} round ${round}: unavailable after ${took} ms (bound ${BOUND_MS} ms)`);
          }),
        );
      }
      t.diagnostic(`posts while Redis is down answered unavailable in ${times.join(", ")} ms`);

      // History goes on: loadHistory, and a new join on every node.
      for (const m of members) {
        assert.deepEqual(ids(await fullHistory(m.socket, book)), ids(beforeOrder), `node ${m.node}: loadHistory while Redis is down`);
      }
      for (const [i] of cluster.nodes.entries()) {
        const late = await r.clients[i].connect(CONFIGS[(i + 1) % 3]);
        const { previous } = await mustJoin(late, book, newUser(`join-while-down-${i}`));
        assert.deepEqual(ids(previous), ids(beforeOrder).reverse(), `node ${i}: a join while Redis is down gets the history`);
        late.disconnect();
      }
      for (const [i, node] of cluster.nodes.entries()) {
        assert.equal((await health(node)).cluster?.link, "down", `node ${i} /health while Redis is down`);
      }
    }));

  test("restarted from its AOF on the same port: posting works again on every node with none restarted; nothing refused is delivered; every message acknowledged before is in the log (a fresh node catches up from it)", T, (t) =>
    withLogs(() => cluster, async () => {
      assert.ok(r.downAt, "the outage above happened");
      const { book, members, beforeOrder } = r;
      await cluster.redis.restart();
      const upAt = Date.now();
      t.diagnostic(`Redis was down for ${upAt - r.downAt} ms`);
      // Posting works again on every node, with no node restarted: bounded wait.
      const after = [];
      await Promise.all(
        members.map(async (m, i) => {
          for (let attempt = 0; ; attempt++) {
            const content = `after-${i}-${attempt}`;
            const { ack } = await timedPost(m, book, content);
            if (ack?.ok) {
              assertMessage(assert, ack.message, { bookId: book, content });
              after.push(ack.message);
              return;
            }
            assertError(assert, ack, "unavailable", null, `node ${i} after Redis came back, attempt ${attempt}`);
            assert.ok(Date.now() - upAt < 20_000, `node ${i}: still unavailable ${Date.now() - upAt} ms after Redis came back`);
            await sleep(200);
          }
        }),
      );
      r.upAt = upAt;
      t.diagnostic(`every node posted again ${Date.now() - upAt} ms after Redis restarted`);
      for (const [i, node] of cluster.nodes.entries()) assert.equal(node.exited, false, `node ${i} still runs (not restarted)`);
      const all = [...beforeOrder, ...[...after].sort(byIdAsc)];
      assert.ok(after.every((m) => m._id > beforeOrder.at(-1)._id), "messages after the outage sort after those before");
      for (const m of members) {
        await m.socket.rec.waitCount("newMessage", all.length);
        await sleep(GRACE_MS);
        assert.deepEqual(ids(m.socket.rec.of("newMessage")), ids(all), `node ${m.node}: nothing refused was delivered; the messages after the outage arrived`);
      }
      for (const [i, node] of cluster.nodes.entries()) assert.equal((await health(node)).cluster?.link, "up", `node ${i} /health after Redis came back`);

      // The log itself kept everything acknowledged before the kill: a node on a fresh data
      // directory catches up from Redis alone.
      const dir = await makeDataDir();
      cluster.dirs.push(dir);
      fresh = await startNode(cluster.redis, dir, { ...FLAGS, clusterNodeTtl: NODE_TTL });
      const c4 = new ChatClients(fresh.url);
      r.clients.push(c4);
      const reader = await c4.connect(CONFIGS[1]);
      await mustJoin(reader, book, newUser("fresh-node"));
      const history = await fullHistory(reader, book);
      assert.deepEqual(ids(history), ids(all), "a fresh node's history from the log: every message acknowledged before and after the outage, none refused");
      assert.ok(!history.some((m) => m.content.startsWith("while-down-")), "no refused post is in the log");
    }));

  test("after an outage longer than --cluster-node-ttl, readers still connected are not seen leaving and stay in every node's roomMembers", T, (t) =>
    withLogs(() => cluster, async () => {
      assert.ok(r.upAt, "Redis came back above");
      const { book, members } = r;
      // Past a few reaping rounds (every second) with Redis back.
      await sleep(Math.max(0, r.upAt + 3000 - Date.now()));
      const seen = [];
      for (const m of members) {
        const listed = (await mustAskMembers(m.socket, book)).members.map((x) => x.username);
        seen.push({ node: m.node, userJoined: m.socket.rec.of("userJoined").map((e) => e.username), userLeft: m.socket.rec.of("userLeft").map((e) => e.username), roomMembers: listed });
      }
      t.diagnostic(`after the outage: ${JSON.stringify(seen)}`);
      for (const [k, m] of members.entries()) {
        for (const other of members) {
          assert.equal(leftCount(m.socket, other.user.username), 0, `node ${m.node}: ${other.user.username} (still connected) was not seen leaving`);
          assert.ok(seen[k].roomMembers.includes(other.user.username), `node ${m.node}: roomMembers still lists ${other.user.username}: ${JSON.stringify(seen[k].roomMembers)}`);
        }
      }
    }));

  // Redis hung (SIGSTOP), not gone: the node's calls time out instead of being refused. A post
  // answered `unavailable` means "nothing was stored or broadcast" (docs/API.md, Errors).
  test("not answering (SIGSTOP): a post answers unavailable within 5 s; after SIGCONT that post is in no history and was never delivered; posting works again", { timeout: 60_000 }, (t) =>
    withLogs(() => cluster, async () => {
      const clients = cluster.nodes.map((node) => new ChatClients(node.url));
      try {
        const { book, members, sent } = await room(clients, 1, "s");
        cluster.redis.pause();
        let resumed = false;
        try {
          const answers = await Promise.all(members.map((m, i) => timedPost(m, book, `while-stopped-${i}`)));
          t.diagnostic(`posts while Redis is stopped answered in ${answers.map((a) => a.took).join(", ")} ms: ${JSON.stringify(answers.map((a) => a.ack?.error?.code ?? a.ack?.ok))}`);
          for (const [i, { ack, took }] of answers.entries()) {
            assertError(assert, ack, "unavailable", null, `node ${i}`);
            assert.ok(took <= BOUND_MS, `node ${i}: unavailable after ${took} ms (bound ${BOUND_MS} ms)`);
          }
          cluster.redis.resume();
          resumed = true;
        } finally {
          if (!resumed) cluster.redis.resume();
        }
        const upAt = Date.now();
        const after = [];
        await Promise.all(
          members.map(async (m, i) => {
            for (let attempt = 0; ; attempt++) {
              const { ack } = await timedPost(m, book, `resumed-${i}-${attempt}`);
              if (ack?.ok) return after.push(ack.message);
              assertError(assert, ack, "unavailable", null, `node ${i} after SIGCONT, attempt ${attempt}`);
              assert.ok(Date.now() - upAt < 20_000, `node ${i}: still unavailable ${Date.now() - upAt} ms after SIGCONT`);
              await sleep(200);
            }
          }),
        );
        const expected = [...sent, ...[...after].sort(byIdAsc)];
        for (const m of members) await m.socket.rec.waitCount("newMessage", expected.length);
        await sleep(1000);
        for (const m of members) {
          const got = m.socket.rec.of("newMessage");
          const refused = got.filter((x) => x.content.startsWith("while-stopped-")).map((x) => x.content);
          assert.deepEqual(refused, [], `node ${m.node}: no post answered unavailable was delivered`);
          const history = await fullHistory(m.socket, book);
          assert.deepEqual(history.filter((x) => x.content.startsWith("while-stopped-")).map((x) => x.content), [], `node ${m.node}: no post answered unavailable is in the history`);
          assert.deepEqual(ids(got), ids(expected), `node ${m.node}: the acknowledged messages, each once, in order`);
        }
      } finally {
        for (const c of clients) c.closeAll();
      }
    }));
});

describe("cluster: a node behind the log's retention", SUITE, () => {
  const RETENTION = 2500;
  let cluster;
  before(async () => {
    cluster = await startCluster(3, { ...FLAGS, clusterRetention: RETENTION });
  });
  after(async () => {
    await cluster?.stop();
  });

  test("refuses to start, saying to seed it from a live node's backup; seeded so, it starts, catches up and takes part", T, (t) =>
    withLogs(() => cluster, async () => {
      const book = newBook();
      const clients = cluster.nodes.map((node) => new ChatClients(node.url));
      try {
        const members = [];
        for (const [i] of cluster.nodes.entries()) members.push({ node: i, socket: await clients[i].connect(CONFIGS[i]), user: newUser(`m${i}`) });
        for (const m of members) await mustJoin(m.socket, book, m.user);
        await members[0].socket.rec.waitCount("userJoined", 2);
        const sent = [];
        for (const [i, m] of members.entries()) sent.push(await mustPost(m.socket, book, m.user, `first-${i}`));
        for (const m of members) await m.socket.rec.waitCount("newMessage", sent.length);

        // Node 2's reader leaves the room, then node 2 stops (gracefully).
        assert.deepEqual(await leave(members[2].socket, { bookId: book, username: members[2].user.username }), { ok: true });
        for (const m of members.slice(0, 2)) await m.socket.rec.waitMatch("userLeft", (e) => e.username === members[2].user.username, WAIT_MS, `node ${m.node} sees node 2's reader leave`);
        clients[2].closeAll();
        const stopped = await cluster.nodes[2].stop();
        assert.equal(stopped.code, 0, "node 2 stopped gracefully");
        for (const [i, m] of members.slice(0, 2).entries()) sent.push(await mustPost(m.socket, book, m.user, `while-stopped-${i}`));
        // Past the retention and a trim (every retention/4) of everything since it stopped.
        await sleep(RETENTION + RETENTION / 4 + 1000);

        const refused = await runNodeToExit(cluster.redis, cluster.dirs[2], { ...FLAGS, clusterRetention: RETENTION });
        t.diagnostic(`node 2 behind the retention: exit ${JSON.stringify({ code: refused.code, signal: refused.signal })}, stderr: ${refused.stderr.trim().split("\n").slice(-3).join(" | ")}`);
        assert.equal(refused.timedOut, false, `it must not start: stdout=${refused.stdout} stderr=${refused.stderr.slice(-2000)}`);
        assert.equal(refused.code, 1, `exit code 1: stderr=${refused.stderr.slice(-2000)}`);
        assert.ok(refused.stderr.includes(SEED_HINT), `stderr says to ${SEED_HINT}: ${refused.stderr.slice(-2000)}`);
        assert.doesNotMatch(refused.stdout, /listening on/, "it never listened");

        // Seed node 2's data directory from a live node's backup.
        await removeDir(cluster.dirs[2]);
        await fs.mkdir(cluster.dirs[2]);
        const copied = await backup(cluster.nodes[0].dataDir, cluster.dirs[2]);
        assert.equal(copied.code, 0, `readrealm-chat backup: ${copied.stderr}`);
        // Entries after the backup: the seeded node must catch up on them from the log.
        sent.push(await mustPost(members[0].socket, book, members[0].user, "after-the-backup"));
        const started = Date.now();
        const n2 = await cluster.restart(2);
        t.diagnostic(`the seeded node started in ${Date.now() - started} ms`);
        const id0 = (await health(cluster.nodes[0])).cluster?.node;
        const id2 = (await health(n2)).cluster?.node;
        assert.notEqual(id2, id0, "the seeded node is not the node its backup came from");
        const on2 = new ChatClients(n2.url);
        clients.push(on2);
        const late = await on2.connect(CONFIGS[2]);
        const lateUser = newUser("on-seeded");
        const { ack, previous } = await mustJoin(late, book, lateUser);
        const order = [...sent].sort(byIdAsc);
        assert.deepEqual(ids(previous), ids(order).reverse(), "the seeded node's history: everything, the message after the backup too");
        assert.deepEqual(sorted(ack.members), sorted([members[0].user, members[1].user, lateUser].map(member)), "members as the cluster has them");
        const mine = await mustPost(late, book, lateUser, "from the seeded node");
        for (const m of members.slice(0, 2)) await m.socket.rec.waitMatch("newMessage", (x) => x._id === mine._id, WAIT_MS, `node ${m.node} gets the seeded node's post`);
        const theirs = await mustPost(members[1].socket, book, members[1].user, "to the seeded node");
        await late.rec.waitMatch("newMessage", (x) => x._id === theirs._id, WAIT_MS, "the seeded node gets node 1's post");
        await sleep(1000);
        for (const m of members.slice(0, 2)) {
          const listed = sorted((await mustAskMembers(m.socket, book)).members);
          assert.deepEqual(listed, sorted([members[0].user, members[1].user, lateUser].map(member)), `roomMembers on node ${m.node}`);
          assert.equal(m.socket.rec.count("userLeft"), 1, `node ${m.node}: only node 2's reader left, once`);
        }
      } finally {
        for (const c of clients) c.closeAll();
      }
    }));
});

describe("cluster: what Redis must hold before a post is acknowledged", SUITE, () => {
  let cluster;
  let replica;
  after(async () => {
    replica?.proc.kill("SIGKILL");
    if (replica) await removeDir(replica.dir);
    await cluster?.stop();
  });

  test("--cluster-min-replicas 1 without a replica: posts are answered unavailable, never ok; once a replica holds them, ok", T, (t) =>
    withLogs(() => cluster, async () => {
      cluster = await startCluster(2, { ...FLAGS, clusterMinReplicas: 1, clusterTimeout: 500 });
      const book = newBook();
      const clients = cluster.nodes.map((node) => new ChatClients(node.url));
      try {
        const a = { socket: await clients[0].connect(CONFIGS[0]), user: newUser("a") };
        const b = { socket: await clients[1].connect(CONFIGS[1]), user: newUser("b") };
        // Joins are in the log although no replica confirms them: answered when applied.
        for (const x of [a, b]) await mustJoin(x.socket, book, x.user);
        const started = Date.now();
        const refused = await post(a.socket, { bookId: book, ...a.user, content: "no replica" });
        t.diagnostic(`answered in ${Date.now() - started} ms: ${JSON.stringify(refused)}`);
        assert.equal(refused?.ok, false, `not acknowledged without a replica: ${JSON.stringify(refused)}`);
        assert.equal(refused.error?.code, "unavailable");
        assert.ok(Date.now() - started < 5000, "answered within 5 s");

        // A replica of that Redis: the next posts are acknowledged.
        const dir = await fs.mkdtemp(path.join(os.tmpdir(), "readrealm-replica-test-"));
        const port = await freePort();
        const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir, "--replicaof", "127.0.0.1", String(cluster.redis.port), "--repl-diskless-sync-delay", "0"], { stdio: "ignore" });
        replica = { proc, dir };
        let ok = null;
        const deadline = Date.now() + 20_000;
        while (Date.now() < deadline && !ok) {
          const ack = await post(a.socket, { bookId: book, ...a.user, content: "with a replica" });
          if (ack?.ok) ok = ack;
          else await sleep(200);
        }
        assert.ok(ok, "a post is acknowledged once a replica holds it");
        await b.socket.rec.waitMatch("newMessage", (m) => m._id === ok.message._id, WAIT_MS, "the other node's member gets it");
      } finally {
        for (const c of clients) c.closeAll();
      }
    }));
});

describe("cluster: Redis losing acknowledged entries", SUITE, () => {
  let cluster;
  after(async () => {
    await cluster?.stop();
  });

  test("every node refuses posts (never numbering a message twice) and says so in /health; a node restarted on such a Redis refuses to start", T, (t) =>
    withLogs(() => cluster, async () => {
      cluster = await startCluster(2, { ...FLAGS, clusterNodeTtl: 1500 });
      const book = newBook();
      const clients = cluster.nodes.map((node) => new ChatClients(node.url));
      try {
        const a = { socket: await clients[0].connect(CONFIGS[0]), user: newUser("a") };
        const b = { socket: await clients[1].connect(CONFIGS[2]), user: newUser("b") };
        for (const x of [a, b]) await mustJoin(x.socket, book, x.user);
        const kept = [];
        for (let i = 0; i < 3; i++) kept.push(await mustPost(a.socket, book, a.user, `kept-${i}`));
        await b.socket.rec.waitCount("newMessage", 3);
        // Redis loses everything (as a restore of an old AOF or a lagging replica would lose
        // the newest part).
        const flushed = spawnSync("redis-cli", ["-p", String(cluster.redis.port), "FLUSHALL"], { encoding: "utf8" });
        assert.equal(flushed.status, 0, flushed.stderr);
        // A post at once, before any keeper looked: Redis numbers it 1 again, a number both
        // nodes hold. It must be neither acknowledged nor stored over kept-0.
        const raced = await post(a.socket, { bookId: book, ...a.user, content: "raced-the-check" });
        assert.equal(raced?.ok, false, `the raced post is not acknowledged: ${JSON.stringify(raced)}`);
        assert.equal(raced.error?.code, "unavailable");
        for (const [i, x] of [a, b].entries()) {
          const deadline = Date.now() + 10_000;
          while ((await health(cluster.nodes[i])).cluster?.redis_lost_entries !== true) {
            assert.ok(Date.now() < deadline, `node ${i}'s /health says Redis lost entries within 10 s`);
            await sleep(100);
          }
          const ack = await post(x.socket, { bookId: book, ...x.user, content: `after-the-loss-${i}` });
          assert.equal(ack?.ok, false, `node ${i}: no post acknowledged: ${JSON.stringify(ack)}`);
          assert.equal(ack.error?.code, "unavailable");
        }
        // The history every node had is untouched.
        for (const x of [a, b]) {
          const history = await fullHistory(x.socket, book);
          assert.deepEqual(history.map((m) => m._id), kept.map((m) => m._id), "history as it was");
        }
        await cluster.nodes[1].stop();
        const refused = await runNodeToExit(cluster.redis, cluster.dirs[1], FLAGS);
        assert.equal(refused.code, 1, `exit 1: ${refused.stderr.slice(-1500)}`);
        assert.match(refused.stderr, /Redis lost acknowledged entries/);
      } finally {
        for (const c of clients) c.closeAll();
      }
    }));
});
