// `loadHistory` (docs/API.md, "Older history") checked with socket.io-client 4.8 and
// `emitWithAck`, against `readrealm-chat --shards 2 --message-rate 100000 --message-burst 100000`,
// on each of the three client configurations (polling then websocket upgrade, websocket-only,
// polling-only):
//
// - a room of 3,000 messages (posted through the server as fast as it acknowledges them) paged
//   with `before` = the last `_id` of each page: each message once, in the order acknowledged
//   (newest first), `hasMore` false only on the last page;
// - `limit` bounds and types, `before` malformed, a room not joined, no ack callback;
// - `before` = an `_id` of another room, or one no room holds: the page of the room's messages
//   whose `_id` sorts before it.
//
// Expected values come from the acknowledgements the poster received, never from the pages.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import {
  CONFIGS,
  ChatClients,
  assertError,
  assertMessage,
  configByKey,
  join,
  newBook,
  newUser,
  post,
  request,
  startChatServer,
} from "./chat-helpers.mjs";

const T = { timeout: 120_000 };
const ROOM_SIZE = 3000;

/** Posts `n` messages to `book` from `socket`, 200 in flight at a time; the acked messages in order. */
async function postMany(socket, user, book, n, label = "m") {
  const acked = [];
  for (let start = 0; start < n; start += 200) {
    const batch = [];
    for (let i = start; i < Math.min(n, start + 200); i++) {
      batch.push(post(socket, { bookId: book, ...user, content: `${label} ${i} «ünïcode»` }));
    }
    for (const ack of await Promise.all(batch)) {
      assert.equal(ack.ok, true, JSON.stringify(ack));
      acked.push(ack.message);
    }
  }
  // Acks of one connection's messages to one room come back in room order.
  for (let i = 1; i < acked.length; i++) assert.ok(acked[i - 1]._id < acked[i]._id, "acked in room order");
  return acked;
}

/** Pages `book` with `limit` from the newest to the first; every page's messages and the page count. */
async function walk(socket, book, limit) {
  const all = [];
  let cursor;
  for (let pages = 1; ; pages++) {
    const payload = cursor === undefined ? { bookId: book, limit } : { bookId: book, before: cursor, limit };
    const ack = await request(socket, "loadHistory", payload);
    assert.deepEqual(Object.keys(ack).sort(), ["hasMore", "messages", "ok"], JSON.stringify(ack).slice(0, 200));
    assert.equal(ack.ok, true);
    assert.ok(Array.isArray(ack.messages));
    assert.ok(ack.messages.length <= limit);
    all.push(...ack.messages);
    if (!ack.hasMore) return { all, pages };
    assert.equal(ack.hasMore, true);
    cursor = ack.messages.at(-1)._id;
    assert.ok(pages < 10_000, "paging never ends");
  }
}

describe("loadHistory", () => {
  let server;
  let clients;
  const room = newBook();
  let acked = [];

  before(async () => {
    server = await startChatServer({ flags: { messageRate: 100000, messageBurst: 100000 } });
    clients = new ChatClients(server.url);
    const poster = await clients.connect(configByKey("websocket"));
    const user = newUser("poster");
    await join(poster, { bookId: room, ...user });
    acked = await postMany(poster, user, room, ROOM_SIZE);
  });
  after(async () => {
    await clients?.closeAll?.();
    for (const s of clients?.sockets ?? []) s.disconnect();
    await server?.stop();
  });

  for (const config of CONFIGS) {
    test(`paging a room of ${ROOM_SIZE} messages walks to the first, each once (${config.key})`, T, async () => {
      const reader = await clients.connect(config);
      await join(reader, { bookId: room, ...newUser() });
      const expected = acked.toReversed();
      for (const limit of [100, 37]) {
        const { all, pages } = await walk(reader, room, limit);
        assert.equal(pages, Math.ceil(ROOM_SIZE / limit), `pages at limit ${limit}`);
        assert.equal(new Set(all.map((m) => m._id)).size, ROOM_SIZE, "each message once");
        assert.deepEqual(all, expected, `limit ${limit}: the acked messages, newest first`);
      }
      // Without limit: 50, the newest, each a Message.
      const page = await request(reader, "loadHistory", { bookId: room });
      assert.equal(page.messages.length, 50);
      assert.equal(page.hasMore, true);
      assert.deepEqual(page.messages, expected.slice(0, 50));
      for (const m of page.messages) assertMessage(assert, m, { bookId: room });
      // Below the first message: nothing, and nothing more.
      const end = await request(reader, "loadHistory", { bookId: room, before: acked[0]._id });
      assert.deepEqual(end, { ok: true, messages: [], hasMore: false });
      reader.disconnect();
    });

    test(`limit must be a whole JSON number from 1 to 100 (${config.key})`, T, async () => {
      const reader = await clients.connect(config);
      await join(reader, { bookId: room, ...newUser() });
      for (const limit of [0, 101, 1.5, -1, "5", null, true, [5], { n: 5 }, 1e300]) {
        const ack = await request(reader, "loadHistory", { bookId: room, limit });
        assertError(assert, ack, "invalid_payload", /limit/, `limit ${JSON.stringify(limit)}`);
      }
      for (const limit of [1, 100]) {
        const ack = await request(reader, "loadHistory", { bookId: room, limit });
        assert.equal(ack.messages.length, limit);
        assert.deepEqual(ack.messages, acked.toReversed().slice(0, limit));
      }
      reader.disconnect();
    });

    test(`before must be 24 lowercase hex characters (${config.key})`, T, async () => {
      const reader = await clients.connect(config);
      await join(reader, { bookId: room, ...newUser() });
      const good = acked[10]._id;
      for (const before of [good.toUpperCase(), good.slice(1), `${good}0`, `${good.slice(1)}g`, 12, null, {}, [good]]) {
        const ack = await request(reader, "loadHistory", { bookId: room, before });
        assertError(assert, ack, "invalid_payload", /before/, `before ${JSON.stringify(before)}`);
      }
      for (const payload of [{ bookId: 0 }, { before: good }, { bookId: "x" }]) {
        const ack = await request(reader, "loadHistory", payload);
        assertError(assert, ack, "invalid_payload", /bookId/, JSON.stringify(payload));
      }
      const ack = await request(reader, "loadHistory", { bookId: room, before: good });
      assert.deepEqual(ack, { ok: true, messages: acked.slice(0, 10).toReversed(), hasMore: false });
      reader.disconnect();
    });

    test(`a room not joined is not_in_room (${config.key})`, T, async () => {
      const reader = await clients.connect(config);
      await join(reader, { bookId: newBook(), ...newUser() });
      const ack = await request(reader, "loadHistory", { bookId: room });
      assertError(assert, ack, "not_in_room", null);
      reader.disconnect();
    });

    test(`without an ack callback: exception invalid_payload (${config.key})`, T, async () => {
      const reader = await clients.connect(config);
      await join(reader, { bookId: room, ...newUser() });
      reader.emit("loadHistory", { bookId: room });
      const exception = await reader.rec.waitMatch("exception", (e) => e?.event === "loadHistory");
      assert.deepEqual(Object.keys(exception).sort(), ["code", "event", "message", "status"]);
      assert.equal(exception.status, "error");
      assert.equal(exception.code, "invalid_payload");
      // The connection still works.
      const ack = await request(reader, "loadHistory", { bookId: room, limit: 1 });
      assert.deepEqual(ack.messages, [acked.at(-1)]);
      reader.disconnect();
    });

    test(`before = another room's _id, or one no room holds: the messages sorting before it (${config.key})`, T, async () => {
      const a = newBook();
      const b = newBook();
      const reader = await clients.connect(config);
      const user = newUser();
      await join(reader, { bookId: a, ...user });
      await join(reader, { bookId: b, ...user });
      // The rooms' messages alternate, so each room's `_id`s fall between the other's.
      const inA = [];
      const inB = [];
      for (let i = 0; i < 12; i++) {
        inA.push((await post(reader, { bookId: a, ...user, content: `a${i}` })).message);
        inB.push((await post(reader, { bookId: b, ...user, content: `b${i}` })).message);
      }
      for (const cursor of [inB[0]._id, inB[5]._id, inB[11]._id]) {
        const below = inA.filter((m) => m._id < cursor).toReversed().slice(0, 4);
        const ack = await request(reader, "loadHistory", { bookId: a, before: cursor, limit: 4 });
        assert.deepEqual(ack.messages, below, `below ${cursor}`);
        assert.equal(ack.hasMore, below.length > 0 && below.at(-1)._id !== inA[0]._id);
      }
      const none = await request(reader, "loadHistory", { bookId: a, before: "000000000000000000000000" });
      assert.deepEqual(none, { ok: true, messages: [], hasMore: false });
      const top = await request(reader, "loadHistory", { bookId: a, before: "ffffffffffffffffffffffff", limit: 2 });
      assert.deepEqual(top, { ok: true, messages: inA.slice(-2).toReversed(), hasMore: true });
      reader.disconnect();
    });
  }
});
