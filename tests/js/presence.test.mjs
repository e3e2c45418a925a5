// Who is here (docs/API.md): the `members`/`memberCount` of the joinRoom ack, `roomMembers`,
// per-reader presence (a reader is a userId: a second tab tells nobody), disconnect, and one
// order of a room's `userJoined`/`userLeft`/`newMessage` for every member on every shard.
//
// socket.io-client 4.8 against `readrealm-chat --shards 2`, clients spread over the three
// transport configurations. A session's shard is the first character of its Engine.IO sid
// (`A` = shard 0, `B` = shard 1, src/engineio/sid.rs); `connectOn` reconnects until a client
// lands on the shard it wants (the kernel spreads connections over the shards' listeners), so
// the tests really put members on both shards, one of them the room's home and one not.

import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";

import {
  CONFIGS,
  ChatClients,
  GRACE_MS,
  WAIT_MS,
  assertError,
  assertPresence,
  join,
  leave,
  newBook,
  newUser,
  post,
  request,
  skipUnlessOwnServer,
  sleep,
  startChatServer,
  waitUntil,
} from "./chat-helpers.mjs";

const T = { timeout: 90_000 };
const MAX_LISTED = 100;

/** The shard a connected client's session lives on (from its sid's first character). */
function shardOf(socket) {
  const id = socket.io.engine?.id ?? "";
  return "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".indexOf(id[0]);
}

/** A client connected to shard `shard` (reconnecting until it lands there). */
async function connectOn(clients, shard, config) {
  for (let attempt = 0; attempt < 60; attempt++) {
    const socket = await clients.connect(config);
    if (shardOf(socket) === shard) return socket;
    socket.disconnect();
  }
  throw new Error(`no connection landed on shard ${shard} in 60 attempts`);
}

/** The home shard of a book among `shards` (as src/chat/home.rs computes it). */
function homeShard(bookId, shards = 2) {
  const mixed = (BigInt(bookId) * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
  return Number((mixed >> 32n) % BigInt(shards));
}

const member = (u) => ({ userId: u.userId, username: u.username });
const byUserId = (a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0);
const sorted = (list) => [...list].sort(byUserId);

/** joinRoom with an ack that must succeed; resolves with `{ ack, previous }`. */
async function mustJoin(socket, bookId, user) {
  const { ack, previous } = await join(socket, { bookId, ...user });
  assert.equal(ack?.ok, true, `joinRoom (${socket.config.key}): ${JSON.stringify(ack)?.slice(0, 300)}`);
  assert.deepEqual(Object.keys(ack).sort(), ["memberCount", "members", "ok", "room"]);
  return { ack, previous };
}

/** roomMembers that must succeed; resolves with the ack. */
async function mustAskMembers(socket, bookId) {
  const ack = await request(socket, "roomMembers", { bookId });
  assert.deepEqual(Object.keys(ack ?? {}).sort(), ["memberCount", "members", "ok"], `roomMembers: ${JSON.stringify(ack)?.slice(0, 300)}`);
  assert.equal(ack.ok, true);
  return ack;
}

/** Exactly `n` events of `name` on `socket` after a grace period. */
async function assertCountStays(socket, name, n, label) {
  await sleep(GRACE_MS);
  assert.equal(socket.rec.count(name), n, `${label}: ${name} events ${JSON.stringify(socket.rec.of(name)).slice(0, 500)}`);
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

describe("who is here: readrealm-chat --shards 2", skipUnlessOwnServer("members, roomMembers and per-reader presence"), () => {
  const h = { server: null, clients: null };
  before(async () => {
    // A dropped connection leaves its rooms when its recovery window ends: 1.5 s here.
    h.server = await startChatServer({ shards: 2, flags: { recoveryWindow: 1500 } });
  });
  after(async () => {
    await h.server?.stop();
  });
  beforeEach(() => {
    h.clients = new ChatClients(h.server.url);
  });
  afterEach(() => {
    const dup = h.clients.duplicateAcks();
    h.clients.closeAll();
    assert.deepEqual(dup, [], "every request is answered exactly once");
    assert.equal(h.server.exited, false, `the server is still running; stderr=${h.server.stderr().slice(-2000)}`);
  });

  for (const config of CONFIGS) {
    test(`the joinRoom ack lists the readers (joiner included, each once, first tab's username) and memberCount (${config.key})`, T, async () => {
      const book = newBook();
      const ua = newUser("a");
      const ub = newUser("b");
      const a = await connectOn(h.clients, 0, config);
      const b = await connectOn(h.clients, 1, CONFIGS[(CONFIGS.indexOf(config) + 1) % CONFIGS.length]);
      const ja = await mustJoin(a, book, ua);
      assert.deepEqual(ja.ack, { ok: true, room: `book_${book}`, members: [member(ua)], memberCount: 1 });
      const jb = await mustJoin(b, book, ub);
      assert.deepEqual(sorted(jb.ack.members), sorted([member(ua), member(ub)]));
      assert.equal(jb.ack.memberCount, 2);
      assertPresence(assert, (await a.rec.waitCount("userJoined", 1))[0], ub.username);

      // A second tab of reader a, on the other shard, under another name: listed once, with
      // the first tab's username; nobody is told, a's first tab neither.
      const a2 = await connectOn(h.clients, 1, config);
      const ja2 = await mustJoin(a2, book, { userId: ua.userId, username: `${ua.username}-tab2` });
      assert.deepEqual(sorted(ja2.ack.members), sorted([member(ua), member(ub)]), "one entry per reader, the first tab's username");
      assert.equal(ja2.ack.memberCount, 2);
      await assertCountStays(b, "userJoined", 0, "a second tab joining tells the other reader nothing");
      await assertCountStays(a, "userJoined", 1, "a second tab joining tells the reader's first tab nothing");
      assert.equal(a2.rec.count("userJoined"), 0, "the joining tab gets no userJoined");
    });
  }

  test("roomMembers: the same list asked from members on both shards; not_in_room; no ack → exception", T, async () => {
    const book = newBook();
    const users = [newUser("m0"), newUser("m1"), newUser("m2"), newUser("m3")];
    const sockets = [];
    for (const [i, u] of users.entries()) {
      const s = await connectOn(h.clients, i % 2, CONFIGS[i % CONFIGS.length]);
      await mustJoin(s, book, u);
      sockets.push(s);
    }
    // Every member has seen every later joiner, so every join has reached the home.
    await sockets[0].rec.waitCount("userJoined", users.length - 1);
    const expected = sorted(users.map(member));
    for (const s of sockets) {
      const ack = await mustAskMembers(s, book);
      assert.deepEqual(sorted(ack.members), expected, `roomMembers from shard ${shardOf(s)} (${s.config.key})`);
      assert.equal(ack.memberCount, users.length);
    }
    // A reader leaves: everyone's list loses it.
    assert.deepEqual(await leave(sockets[3], { bookId: book, username: users[3].username }), { ok: true });
    await sockets[0].rec.waitCount("userLeft", 1);
    for (const s of sockets.slice(0, 3)) {
      const ack = await mustAskMembers(s, book);
      assert.deepEqual(sorted(ack.members), sorted(users.slice(0, 3).map(member)));
      assert.equal(ack.memberCount, 3);
    }
    assertError(assert, await request(sockets[3], "roomMembers", { bookId: book }), "not_in_room");
    assertError(assert, await request(sockets[0], "roomMembers", { bookId: newBook() }), "not_in_room");
    assertError(assert, await request(sockets[0], "roomMembers", { bookId: "x" }), "invalid_payload", /bookId/);
    assertError(assert, await request(sockets[0], "roomMembers", "not an object"), "invalid_payload");
    // Without an ack callback: invalid_payload as an exception event.
    sockets[1].emit("roomMembers", { bookId: book });
    const [exception] = await sockets[1].rec.waitCount("exception", 1);
    assert.equal(exception.status, "error");
    assert.equal(exception.event, "roomMembers");
    assert.equal(exception.code, "invalid_payload");
  });

  test("members are capped at 100, the joiner among them; memberCount counts every reader", { timeout: 120_000 }, async () => {
    const book = newBook();
    const ws = CONFIGS.find((c) => c.key === "websocket");
    const users = Array.from({ length: MAX_LISTED + 2 }, (_, i) => newUser(`cap${i}`));
    const sockets = await h.clients.connectMany(users.length, [ws]);
    for (let i = 0; i < users.length - 1; i++) await mustJoin(sockets[i], book, users[i]);
    const last = users.length - 1;
    const { ack } = await mustJoin(sockets[last], book, users[last]);
    assert.equal(ack.memberCount, users.length);
    assert.equal(ack.members.length, MAX_LISTED);
    assert.ok(ack.members.some((m) => m.userId === users[last].userId), "the joiner is listed");
    const known = new Map(users.map((u) => [u.userId, u.username]));
    assert.equal(new Set(ack.members.map((m) => m.userId)).size, MAX_LISTED, "each reader once");
    for (const m of ack.members) assert.equal(known.get(m.userId), m.username, `a reader of the room: ${JSON.stringify(m)}`);
    const asked = await mustAskMembers(sockets[0], book);
    assert.equal(asked.memberCount, users.length);
    assert.equal(asked.members.length, MAX_LISTED);
    assert.equal(new Set(asked.members.map((m) => m.userId)).size, MAX_LISTED);
  });

  for (const config of CONFIGS) {
    test(`two tabs of one reader: the second joining, leaving, disconnecting tells nobody; the last leaving sends one userLeft (${config.key})`, T, async () => {
      const book = newBook();
      const reader = newUser("two-tabs");
      const ow = newUser("watcher");
      const watcher = await connectOn(h.clients, 0, config);
      await mustJoin(watcher, book, ow);
      const tab1 = await connectOn(h.clients, 1, config);
      const tab2 = await connectOn(h.clients, 0, CONFIGS[(CONFIGS.indexOf(config) + 1) % CONFIGS.length]);
      await mustJoin(tab1, book, reader);
      await watcher.rec.waitCount("userJoined", 1);
      await mustJoin(tab2, book, reader);
      assert.deepEqual(await leave(tab2, { bookId: book, username: reader.username }), { ok: true });
      await mustJoin(tab2, book, reader);
      const tab3 = await connectOn(h.clients, 1, config);
      await mustJoin(tab3, book, reader);
      tab3.disconnect();
      await assertCountStays(watcher, "userJoined", 1, "second and third tabs joining");
      assert.equal(watcher.rec.count("userLeft"), 0, "a tab leaving or disconnecting while another stays");
      assert.equal(tab1.rec.count("userJoined") + tab1.rec.count("userLeft"), 0, "the reader's own tabs hear nothing of each other");
      const still = await mustAskMembers(watcher, book);
      assert.deepEqual(sorted(still.members), sorted([member(ow), member(reader)]));
      assert.equal(still.memberCount, 2);

      // The reader's last two tabs go: one by leaveRoom, the last by disconnect → one userLeft.
      assert.deepEqual(await leave(tab1, { bookId: book, username: reader.username }), { ok: true });
      await assertCountStays(watcher, "userLeft", 0, "a tab leaving while another stays");
      tab2.disconnect();
      const [left] = await watcher.rec.waitCount("userLeft", 1);
      assertPresence(assert, left, reader.username);
      await assertCountStays(watcher, "userLeft", 1, "exactly one userLeft for the reader");
      const now = await mustAskMembers(watcher, book);
      assert.deepEqual(now, { ok: true, members: [member(ow)], memberCount: 1 });
    });

    test(`disconnect of a connection in 2 rooms: one userLeft per room; a room where the reader has another tab hears nothing (${config.key})`, T, async () => {
      const [bookX, bookY] = [newBook(), newBook()];
      const reader = newUser("leaver");
      const ox = newUser("ox");
      const oy = newUser("oy");
      const watchX = await connectOn(h.clients, 0, config);
      const watchY = await connectOn(h.clients, 1, config);
      await mustJoin(watchX, bookX, ox);
      await mustJoin(watchY, bookY, oy);
      const c = await connectOn(h.clients, 1, config);
      await mustJoin(c, bookX, reader);
      await mustJoin(c, bookY, reader);
      await watchX.rec.waitCount("userJoined", 1);
      await watchY.rec.waitCount("userJoined", 1);
      c.disconnect();
      for (const [w, label] of [[watchX, "room X"], [watchY, "room Y"]]) {
        const [left] = await w.rec.waitCount("userLeft", 1);
        assertPresence(assert, left, reader.username);
        await assertCountStays(w, "userLeft", 1, label);
      }
      // Again with a second tab of the reader staying in X: only Y hears of the disconnect.
      const again = await connectOn(h.clients, 0, config);
      const stay = await connectOn(h.clients, 1, config);
      await mustJoin(again, bookX, reader);
      await mustJoin(again, bookY, reader);
      await mustJoin(stay, bookX, reader);
      await watchX.rec.waitCount("userJoined", 2);
      await watchY.rec.waitCount("userJoined", 2);
      again.io.engine.close();
      await watchY.rec.waitCount("userLeft", 2);
      await assertCountStays(watchX, "userLeft", 1, "room X keeps the reader's other tab");
      assert.deepEqual(sorted((await mustAskMembers(watchX, bookX)).members), sorted([member(ox), member(reader)]));
      assert.deepEqual((await mustAskMembers(watchY, bookY)).members, [member(oy)]);
    });
  }

  for (const config of CONFIGS) {
    test(`joinRoom, leaveRoom, joinRoom sent at once from a shard that is not the room's home: in, out, in again, each told once (${config.key})`, T, async () => {
      const book = newBook();
      const away = 1 - homeShard(book);
      const ow = newUser("watcher");
      const watcher = await connectOn(h.clients, homeShard(book), config);
      await mustJoin(watcher, book, ow);
      const u = newUser("racer");
      const racer = await connectOn(h.clients, away, config);
      // Not awaited one by one: the leave reaches the room's home before the first join's
      // answer is back, and the second join after it.
      const answers = await Promise.all([
        request(racer, "joinRoom", { bookId: book, ...u }),
        request(racer, "leaveRoom", { bookId: book, username: u.username }),
        request(racer, "joinRoom", { bookId: book, ...u }),
      ]);
      assert.deepEqual(answers.map((a) => a.ok), [true, true, true], JSON.stringify(answers));
      await watcher.rec.waitCount("userJoined", 2);
      await watcher.rec.waitCount("userLeft", 1);
      await assertCountStays(watcher, "userJoined", 2, "in, out, in");
      assert.equal(watcher.rec.count("userLeft"), 1);
      const m = await post(watcher, { bookId: book, ...ow, content: "are you there?" });
      assert.equal(m.ok, true);
      await racer.rec.waitMatch("newMessage", (x) => x._id === m.message._id);
      await assertCountStays(racer, "newMessage", 1, "the racer is in the room once");
      assert.equal((await mustAskMembers(watcher, book)).memberCount, 2);

      // join then leave at once: out in the end, though the join's answer comes after the leave.
      const book2 = newBook();
      const watcher2 = await connectOn(h.clients, homeShard(book2), config);
      await mustJoin(watcher2, book2, ow);
      const racer2 = await connectOn(h.clients, 1 - homeShard(book2), config);
      const u2 = newUser("racer2");
      await Promise.all([
        request(racer2, "joinRoom", { bookId: book2, ...u2 }),
        request(racer2, "leaveRoom", { bookId: book2, username: u2.username }),
      ]);
      await watcher2.rec.waitCount("userLeft", 1);
      const m2 = await post(watcher2, { bookId: book2, ...ow, content: "gone?" });
      assert.equal(m2.ok, true);
      await assertCountStays(racer2, "newMessage", 0, "a connection that left gets no newMessage");
      assert.deepEqual(await mustAskMembers(watcher2, book2), { ok: true, members: [member(ow)], memberCount: 1 });
      assertError(assert, await request(racer2, "roomMembers", { bookId: book2 }), "not_in_room");
    });
  }

  test("one order: observers on both shards see the same sequence of userJoined/userLeft/newMessage while writers and joiners act at once; each joiner's history, members and events fit that order", { timeout: 120_000 }, async () => {
    // Two rounds on two rooms: a single round of a broken order can happen to come out right.
    for (let round = 0; round < 2; round++) {
      const book = newBook();
      const observers = [];
      const observerUsers = [];
      for (let i = 0; i < 4; i++) {
        observers.push(await connectOn(h.clients, i % 2, CONFIGS[i % CONFIGS.length]));
        observerUsers.push(newUser(`obs${i}`));
      }
      const writers = [];
      const writerUsers = [];
      for (let i = 0; i < 4; i++) {
        writers.push(await connectOn(h.clients, i % 2, CONFIGS[(i + 1) % CONFIGS.length]));
        writerUsers.push(newUser(`wr${i}`));
      }
      const joiners = [];
      const joinerUsers = [];
      for (let i = 0; i < 16; i++) {
        joiners.push(await connectOn(h.clients, i % 2, CONFIGS[(i + 2) % CONFIGS.length]));
        joinerUsers.push(newUser(`jn${i}`));
      }
      // Observers and writers join one by one; once each has heard of every later one, the
      // recordings start from a quiet room.
      const settled = [...observers, ...writers];
      const settledUsers = [...observerUsers, ...writerUsers];
      for (const [i, s] of settled.entries()) await mustJoin(s, book, settledUsers[i]);
      for (const [i, s] of settled.entries()) await s.rec.waitCount("userJoined", settled.length - 1 - i);
      await sleep(GRACE_MS);
      for (const s of settled) s.rec.clear();

      const PER_WRITER = 12;
      const PER_JOINER = 2;
      const jitter = () => sleep(Math.floor(Math.random() * 4));
      const joinResults = new Array(joiners.length);
      await Promise.all([
        ...writers.map(async (w, i) => {
          for (let n = 0; n < PER_WRITER; n++) {
            const ack = await post(w, { bookId: book, ...writerUsers[i], content: `w${i}-${n}` });
            assert.equal(ack?.ok, true, JSON.stringify(ack));
            await jitter();
          }
        }),
        ...joiners.map(async (j, i) => {
          await sleep(Math.floor(Math.random() * 30));
          joinResults[i] = await mustJoin(j, book, joinerUsers[i]);
          for (let n = 0; n < PER_JOINER; n++) {
            const ack = await post(j, { bookId: book, ...joinerUsers[i], content: `j${i}-${n}` });
            assert.equal(ack?.ok, true, JSON.stringify(ack));
            await jitter();
          }
          if (i % 2 === 0) {
            assert.deepEqual(await leave(j, { bookId: book, username: joinerUsers[i].username }), { ok: true });
          } else {
            j.disconnect();
          }
        }),
      ]);

      const messages = writers.length * PER_WRITER + joiners.length * PER_JOINER;
      for (const o of observers) {
        await o.rec.waitCount("newMessage", messages);
        await o.rec.waitCount("userJoined", joiners.length);
        await o.rec.waitCount("userLeft", joiners.length);
      }
      await sleep(GRACE_MS);
      const reference = roomSequence(observers[0]);
      assert.equal(reference.length, messages + 2 * joiners.length, "every event once, nothing else");
      for (const [i, o] of observers.entries()) {
        assert.deepEqual(roomSequence(o), reference, `observer ${i} (shard ${shardOf(o)}, ${o.config.key}) sees the order observer 0 (shard ${shardOf(observers[0])}) sees (round ${round})`);
      }

      // Each joiner: its events are the room's events right after its own userJoined (it gets
      // nobody's userJoined from before it, nothing twice), its history the messages before it,
      // its members the readers present at that point.
      for (const [i, j] of joinerUsers.entries()) {
        const at = reference.indexOf(`userJoined:${j.username}`);
        assert.ok(at >= 0, `joiner ${i}'s userJoined is in the sequence`);
        const seen = roomSequence(joiners[i]);
        assert.deepEqual(seen, reference.slice(at + 1, at + 1 + seen.length), `joiner ${i} (shard ${shardOf(joiners[i]) ?? "?"}): its events continue the room's order after its join`);
        for (let n = 0; n < PER_JOINER; n++) {
          assert.ok(joiners[i].rec.of("newMessage").some((m) => m.content === `j${i}-${n}`), `joiner ${i} got its own message ${n}`);
        }
        const before = reference.slice(0, at).filter((e) => e.startsWith("newMessage:")).map((e) => e.slice("newMessage:".length));
        const history = joinResults[i].previous.map((m) => m._id);
        assert.deepEqual(history, before.slice(-50).reverse(), `joiner ${i}: previousMessages are the messages before its join`);
        const present = new Set(settledUsers.map((u) => u.username));
        for (const e of reference.slice(0, at)) {
          if (e.startsWith("userJoined:")) present.add(e.slice("userJoined:".length));
          if (e.startsWith("userLeft:")) present.delete(e.slice("userLeft:".length));
        }
        present.add(j.username);
        const { ack } = joinResults[i];
        assert.deepEqual(ack.members.map((m) => m.username).sort(), [...present].sort(), `joiner ${i}: members as of its join`);
        assert.equal(ack.memberCount, present.size);
      }
    }
  });
});
