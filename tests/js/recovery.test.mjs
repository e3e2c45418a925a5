// Connection state recovery (docs/API.md, "Reconnecting without losing messages"), with
// socket.io-client 4.8 and its stock options (it reconnects by itself and sends `{ pid, offset }`):
// a reader whose connection drops comes back `recovered`, with its socket id, in its rooms, and
// gets every newMessage it missed exactly once, in room order, before anything newer; nobody sees
// it leave or join. Not after its window, not after a clean `disconnect()`. Also across a graceful
// restart (SIGTERM, then a new server on the same data directory within the window).
//
// The reader reaches the server through a small TCP proxy (tcp-proxy.mjs), which can refuse new
// connections (so the gap lasts as long as the test needs), black-hole the live ones (so the
// server sees no pong: a ping timeout), and forward to a restarted server's new port. The writer
// connects directly. Every case runs on all three transports, 2 shards.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import {
  CONFIGS,
  ChatClients,
  GRACE_MS,
  assertMessage,
  join,
  makeDataDir,
  newBook,
  newUser,
  post,
  removeDir,
  request,
  skipUnlessOwnServer,
  sleep,
  startChatServer,
  waitUntil,
} from "./chat-helpers.mjs";
import { startProxy } from "./tcp-proxy.mjs";

const T = { timeout: 60_000 };
const FLAGS = { messageRate: 1000, messageBurst: 1000 };

/** Resolves with the next `connect` of `socket` (after a reconnection). */
function nextConnect(socket, ms = 15_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no reconnection within " + ms + " ms")), ms);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Resolves with the reason of the next `disconnect` of `socket`. */
function nextDisconnect(socket, ms = 15_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no disconnect within " + ms + " ms")), ms);
    socket.once("disconnect", (reason) => {
      clearTimeout(timer);
      resolve(reason);
    });
  });
}

/** The `newMessage`s a recorder got, with the offset each carried, in arrival order. */
function newMessages(rec) {
  return rec.events.filter((e) => e.event === "newMessage").map((e) => ({ m: e.args[0], offset: e.args[1] }));
}

/**
 * The reader got every message of `sent`, each once, in each room's order, each with an offset
 * (a string, its last argument); it was sent no `previousMessages` after joining.
 */
function assertExactlyOnce(reader, sent, previousBefore) {
  const got = newMessages(reader.rec);
  for (const { m, offset } of got) {
    assertMessage(assert, m);
    assert.equal(typeof offset, "string", `newMessage carries an offset as last argument: ${JSON.stringify(offset)}`);
  }
  for (const [bookId, list] of Object.entries(sent)) {
    const inRoom = got.filter(({ m }) => m.bookId === Number(bookId)).map(({ m }) => m._id);
    assert.deepEqual(
      inRoom,
      list.map((m) => m._id),
      `book ${bookId}: every message once, in order (got ${inRoom.length}, sent ${list.length})`,
    );
  }
  assert.equal(reader.rec.count("previousMessages"), previousBefore, "no previousMessages after a recovery");
}

describe("connection state recovery (socket.io-client 4.8, stock options)", skipUnlessOwnServer("connection state recovery"), () => {
  let server;
  let proxy;
  let clients;

  before(async () => {
    server = await startChatServer({ shards: 2, flags: FLAGS });
    proxy = await startProxy(server.port);
  });
  after(async () => {
    clients?.closeAll();
    await proxy?.close();
    await server?.stop();
  });

  for (const config of CONFIGS) {
    test(`${config.name}: after engine.close(), recovered with exactly the missed messages of both rooms`, T, async () => {
      clients = new ChatClients(proxy.url);
      const direct = new ChatClients(server.url);
      try {
        const s = await setUpVia(clients, direct, proxy, config);
        const { reader, writer, bookA, bookB, say, sent, readerUser } = s;
        const id = reader.id;
        const previousBefore = reader.rec.count("previousMessages");
        writer.rec.clear();
        const dropped = nextDisconnect(reader);
        reader.io.engine.close();
        await dropped;
        // The close reaches the server (on polling, as a POST, maybe on a new connection);
        // then the reader's reconnection attempts are refused until the gap is over.
        await sleep(100);
        proxy.refuse();
        // The gap: messages in both rooms while the reader is away.
        await say(bookA, "gap 1");
        await say(bookB, "gap 2");
        await say(bookA, "gap 3");
        await say(bookB, "gap 4");
        const back = nextConnect(reader);
        proxy.forward();
        await back;
        assert.equal(reader.recovered, true, "socket.recovered after a drop within the window");
        assert.equal(reader.id, id, "the same socket id");
        await reader.rec.waitCount("newMessage", 3 + 4);
        // Newer than the gap: arrives after the replay, once.
        await say(bookB, "after 1");
        await reader.rec.waitCount("newMessage", 3 + 4 + 1);
        await sleep(GRACE_MS);
        assertExactlyOnce(reader, sent, previousBefore);
        // It is back in its rooms with its identity: it can post without joining again.
        const ack = await post(reader, { bookId: bookA, ...readerUser, content: "I am back" });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        assert.equal(writer.rec.count("userLeft"), 0, "nobody saw it leave");
        assert.equal(writer.rec.count("userJoined"), 0, "nobody saw it join");
        const members = await request(writer, "roomMembers", { bookId: bookB });
        assert.ok(members.members.some((m) => m.userId === readerUser.userId), JSON.stringify(members));
      } finally {
        clients.closeAll();
        direct.closeAll();
      }
    });
  }

  // The client is back before the server noticed the drop (a phone on a new network while its
  // old TCP connection looks open): the reconnection's pid names a live connection, which the
  // server then drops (kept, as any drop) before answering. Over WebSocket: a polling client's
  // engine.close() posts a close packet, which the server sees.
  for (const config of CONFIGS.filter((c) => c.key !== "polling"))
  test(`${config.name}: back before the server noticed the drop (old connection still open): recovered exactly`, T, async () => {
    clients = new ChatClients(proxy.url);
    const direct = new ChatClients(server.url);
    try {
      const { reader, writer, bookA, bookB, say, sent } = await setUpVia(clients, direct, proxy, config);
      const id = reader.id;
      const previousBefore = reader.rec.count("previousMessages");
      writer.rec.clear();
      // The old connection goes dead without the server knowing: no close crosses the proxy.
      proxy.blackHole();
      const dropped = nextDisconnect(reader);
      reader.io.engine.close();
      await dropped;
      await say(bookA, "to the old connection 1");
      await say(bookB, "to the old connection 2");
      const back = nextConnect(reader);
      await back;
      assert.equal(reader.recovered, true, "recovered although its old connection was still open");
      assert.equal(reader.id, id);
      await reader.rec.waitCount("newMessage", 3 + 2);
      await say(bookA, "after");
      await reader.rec.waitCount("newMessage", 3 + 2 + 1);
      await sleep(GRACE_MS);
      assertExactlyOnce(reader, sent, previousBefore);
      assert.equal(writer.rec.count("userLeft"), 0, "nobody saw it leave");
      assert.equal(writer.rec.count("userJoined"), 0, "nobody saw it join");
    } finally {
      clients.closeAll();
      direct.closeAll();
    }
  });

  for (const config of CONFIGS)
  test(`${config.name}: after a ping timeout (the network goes dead), recovered with exactly the missed messages`, T, async () => {
    // Its own server: short heartbeats, so the dead connection is noticed in about a second.
    const quick = await startChatServer({ shards: 2, flags: { ...FLAGS, pingInterval: 400, pingTimeout: 400, log: "debug" } });
    const hole = await startProxy(quick.port);
    const readers = new ChatClients(hole.url);
    const direct = new ChatClients(quick.url);
    try {
      const s = await setUpVia(readers, direct, hole, config);
      const { reader, writer, bookA, bookB, say, sent } = s;
      const id = reader.id;
      const previousBefore = reader.rec.count("previousMessages");
      writer.rec.clear();
      const dropped = nextDisconnect(reader);
      hole.deadNetwork();
      await say(bookA, "into the void 1");
      await say(bookB, "into the void 2");
      assert.equal(await dropped, "ping timeout", "the client saw the pings stop");
      // Its reconnection attempts now fail at once, until the gap is over.
      hole.refuse();
      // The server noticed too (its pong deadline passed at about the same time).
      await sleep(300);
      await say(bookA, "gap 3");
      const back = nextConnect(reader);
      hole.forward();
      await back;
      assert.equal(reader.recovered, true);
      assert.equal(reader.id, id);
      await reader.rec.waitCount("newMessage", 3 + 3);
      await sleep(GRACE_MS);
      assertExactlyOnce(reader, sent, previousBefore);
      assert.equal(writer.rec.count("userLeft"), 0, "nobody saw it leave");
      assert.match(quick.stderr(), /event=session_close .*reason="?ping timeout/, "the server closed the session for the missing pong");
    } finally {
      readers.closeAll();
      direct.closeAll();
      await hole.close();
      await quick.stop();
    }
  });
});

/** `setUp` with the reader through `proxy` (`readers`) and the writer direct (`direct`). */
async function setUpVia(readers, direct, proxy, config) {
  const [bookA, bookB] = [newBook(), newBook()];
  const readerUser = newUser("reader");
  const writerUser = newUser("writer");
  const reader = readers.create(config, { reconnection: true });
  await new Promise((resolve, reject) => {
    reader.once("connect", resolve);
    reader.once("connect_error", reject);
  });
  assert.ok(!reader.recovered, "a first connection is not recovered");
  const writer = await direct.connect(config);
  for (const bookId of [bookA, bookB]) {
    assert.equal((await join(reader, { bookId, ...readerUser })).ack.ok, true);
    assert.equal((await join(writer, { bookId, ...writerUser })).ack.ok, true);
  }
  const sent = { [bookA]: [], [bookB]: [] };
  const say = async (bookId, content) => {
    const ack = await post(writer, { bookId, ...writerUser, content });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    sent[bookId].push(ack.message);
    return ack.message;
  };
  await say(bookA, "before 1");
  await say(bookB, "before 2");
  await say(bookA, "before 3");
  await reader.rec.waitCount("newMessage", 3);
  return { bookA, bookB, reader, writer, readerUser, writerUser, sent, say };
}

describe("recovery across a graceful restart, and when it is refused", skipUnlessOwnServer("connection state recovery"), () => {
  test("SIGTERM, then a new server on the same data directory: every transport recovered, exactly", T, async () => {
    const dataDir = await makeDataDir();
    let server = await startChatServer({ shards: 2, dataDir, flags: FLAGS });
    const proxy = await startProxy(server.port);
    const readers = new ChatClients(proxy.url);
    let direct = new ChatClients(server.url);
    try {
      const [bookA, bookB] = [newBook(), newBook()];
      const writerUser = newUser("writer");
      const members = [];
      for (const config of CONFIGS) {
        const reader = readers.create(config, { reconnection: true });
        await new Promise((resolve, reject) => {
          reader.once("connect", resolve);
          reader.once("connect_error", reject);
        });
        const user = newUser(`reader-${config.key}`);
        for (const bookId of [bookA, bookB]) assert.equal((await join(reader, { bookId, ...user })).ack.ok, true);
        members.push({ reader, user, id: reader.id });
      }
      let writer = await direct.connect(CONFIGS[1]);
      for (const bookId of [bookA, bookB]) assert.equal((await join(writer, { bookId, ...writerUser })).ack.ok, true);
      const sent = { [bookA]: [], [bookB]: [] };
      const say = async (bookId, content) => {
        const ack = await post(writer, { bookId, ...writerUser, content });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        sent[bookId].push(ack.message);
      };
      await say(bookA, "before the restart 1");
      await say(bookB, "before the restart 2");
      for (const { reader } of members) await reader.rec.waitCount("newMessage", 2);
      const previousBefore = members.map(({ reader }) => reader.rec.count("previousMessages"));

      proxy.refuse();
      const dropped = members.map(({ reader }) => nextDisconnect(reader));
      const stopped = await server.stop();
      assert.equal(stopped.code, 0, "a graceful stop");
      await Promise.all(dropped);
      direct.closeAll();
      server = await startChatServer({ shards: 2, dataDir, flags: FLAGS });
      direct = new ChatClients(server.url);
      writer = await direct.connect(CONFIGS[1]);
      for (const bookId of [bookA, bookB]) assert.equal((await join(writer, { bookId, ...writerUser })).ack.ok, true);
      await say(bookB, "while they were away 1");
      await say(bookA, "while they were away 2");
      await say(bookB, "while they were away 3");
      const back = members.map(({ reader }) => nextConnect(reader, 20_000));
      proxy.target = server.port;
      proxy.forward();
      await Promise.all(back);
      for (const [i, { reader, id }] of members.entries()) {
        assert.equal(reader.recovered, true, `${reader.config.key}: recovered across the restart`);
        assert.equal(reader.id, id, `${reader.config.key}: the same socket id`);
        await reader.rec.waitCount("newMessage", 5);
        await sleep(GRACE_MS);
        assertExactlyOnce(reader, sent, previousBefore[i]);
      }
      // Back in the rosters (silently: the writer saw nobody join).
      const listed = await request(writer, "roomMembers", { bookId: bookA });
      for (const { user } of members) {
        assert.ok(listed.members.some((m) => m.userId === user.userId), `${user.userId} listed: ${JSON.stringify(listed)}`);
      }
      assert.equal(writer.rec.count("userJoined"), 0);
    } finally {
      readers.closeAll();
      direct.closeAll();
      await proxy.close();
      await server.stop();
      await removeDir(dataDir);
    }
  });

  test("after a restart, a kept reader not back yet is still listed, and leaves when its window ends", T, async () => {
    const dataDir = await makeDataDir();
    const flags = { ...FLAGS, recoveryWindow: 4000 };
    let server = await startChatServer({ shards: 2, dataDir, flags });
    const away = await startProxy(server.port);
    const readers = new ChatClients(away.url);
    let direct = new ChatClients(server.url);
    try {
      const bookId = newBook();
      const user = newUser("away");
      const reader = readers.create(CONFIGS[1], { reconnection: true });
      await new Promise((resolve) => reader.once("connect", resolve));
      assert.equal((await join(reader, { bookId, ...user })).ack.ok, true);
      away.refuse(); // it never comes back
      const dropped = nextDisconnect(reader);
      await server.stop();
      await dropped;
      direct.closeAll();
      server = await startChatServer({ shards: 2, dataDir, flags });
      const restartedAt = Date.now();
      direct = new ChatClients(server.url);
      const watcher = await direct.connect(CONFIGS[1]);
      const joined = await join(watcher, { bookId, ...newUser("watcher") });
      assert.ok(
        joined.ack.members.some((m) => m.userId === user.userId && m.username === user.username),
        `the kept reader is in the room: ${JSON.stringify(joined.ack)}`,
      );
      assert.equal(joined.ack.memberCount, 2);
      const left = await watcher.rec.waitMatch("userLeft", (e) => e.username === user.username, 8000, "userLeft at the window's end");
      assert.equal(left.username, user.username);
      assert.ok(Date.now() - restartedAt >= 1500, "not at once after the restart");
      const now = await request(watcher, "roomMembers", { bookId });
      assert.equal(now.memberCount, 1, JSON.stringify(now));
    } finally {
      readers.closeAll();
      direct.closeAll();
      await away.close();
      await server.stop();
      await removeDir(dataDir);
    }
  });

  for (const config of CONFIGS)
  test(`${config.name}: after the window: not recovered, the room saw the reader leave when the window ended (not before)`, T, async () => {
    const server = await startChatServer({ shards: 2, flags: { ...FLAGS, recoveryWindow: 1500 } });
    const proxy = await startProxy(server.port);
    const readers = new ChatClients(proxy.url);
    const direct = new ChatClients(server.url);
    try {
      const { reader, writer, bookA, say, readerUser } = await setUpVia(readers, direct, proxy, config);
      const id = reader.id;
      writer.rec.clear();
      const dropped = nextDisconnect(reader);
      reader.io.engine.close();
      await dropped;
      const droppedAt = Date.now();
      await sleep(100);
      proxy.refuse();
      await say(bookA, "missed");
      await sleep(700);
      assert.equal(writer.rec.count("userLeft"), 0, "no userLeft while the reader may still come back");
      const left = await writer.rec.waitMatch("userLeft", (e) => e.username === readerUser.username, 5000, "userLeft at the window's end");
      assert.ok(Date.now() - droppedAt >= 1400, `userLeft ${Date.now() - droppedAt} ms after the drop`);
      assert.equal(left.username, readerUser.username);
      const back = nextConnect(reader);
      proxy.forward();
      await back;
      assert.equal(reader.recovered, false, "the window had ended");
      assert.notEqual(reader.id, id);
      const refused = await post(reader, { bookId: bookA, ...readerUser, content: "am I in?" });
      assert.equal(refused.ok, false);
      assert.equal(refused.error.code, "not_in_room", "a fresh connection is in no room");
      const { previous } = await join(reader, { bookId: bookA, ...readerUser });
      assert.ok(previous.some((m) => m.content === "missed"), "joining again gives the history");
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const count = (outcome) => Number(metrics.match(new RegExp(`^readrealm_recoveries_total\\{outcome="${outcome}"\\} (\\d+)$`, "m"))?.[1]);
      assert.equal(count("kept"), 1, metrics);
      assert.equal(count("window_ended"), 1, metrics);
      assert.equal(count("unknown_pid"), 1, "the late reconnection was counted as started fresh");
      assert.equal(count("recovered"), 0);
    } finally {
      readers.closeAll();
      direct.closeAll();
      await proxy.close();
      await server.stop();
    }
  });

  for (const config of CONFIGS) {
    test(`${config.name}: after a clean disconnect(), not recovered, and the room saw the reader leave at once`, T, async () => {
      const server = await startChatServer({ shards: 2, flags: FLAGS });
      const readers = new ChatClients(server.url);
      try {
        const { reader, writer, readerUser } = await setUpVia(readers, readers, { url: server.url }, config);
        const id = reader.id;
        writer.rec.clear();
        reader.disconnect();
        await writer.rec.waitMatch("userLeft", (e) => e.username === readerUser.username, 3000, "userLeft at once");
        const back = nextConnect(reader);
        reader.connect();
        await back;
        assert.equal(reader.recovered, false, "a clean disconnect() is never recovered");
        assert.notEqual(reader.id, id);
      } finally {
        readers.closeAll();
        await server.stop();
      }
    });
  }

  test("--recovery-window 0: no pid, no offsets, nothing recovered", T, async () => {
    const server = await startChatServer({ shards: 2, flags: { ...FLAGS, recoveryWindow: 0 } });
    const proxy = await startProxy(server.port);
    const readers = new ChatClients(proxy.url);
    const direct = new ChatClients(server.url);
    try {
      const { reader, writer } = await setUpVia(readers, direct, proxy, CONFIGS[1]);
      const got = newMessages(reader.rec);
      assert.ok(got.every(({ offset }) => offset === undefined), "newMessage has one argument");
      const dropped = nextDisconnect(reader);
      reader.io.engine.close();
      await dropped;
      await nextConnect(reader);
      assert.ok(!reader.recovered, `not recovered (${reader.recovered}): no pid was given`);
      assert.ok(writer.connected);
    } finally {
      readers.closeAll();
      direct.closeAll();
      await proxy.close();
      await server.stop();
    }
  });
});

