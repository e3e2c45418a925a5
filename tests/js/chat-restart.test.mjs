// Durability (docs/API.md, "Durability"): a newMessage is never sent and a chatMessage never acked
// before the message is stored, and after a restart or a crash of the process previousMessages
// still holds every message that was acknowledged or broadcast.
//
// `readrealm-chat --shards 2 --message-rate 1000 --message-burst 1000` on one temporary data dir:
// 20 clients (spread over the three transports) post into two books with acks, the server is
// killed with SIGKILL while a last wave of posts may still be in flight, and a new server on the
// same data dir must hand every acknowledged / broadcast message back, in order.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import {
  CONFIGS,
  ChatClients,
  GRACE_MS,
  assertMessage,
  assertStrictlyIncreasingIds,
  byIdAsc,
  join,
  makeDataDir,
  newUser,
  post,
  removeDir,
  skipUnlessOwnServer,
  sleep,
  startChatServer,
  waitUntil,
} from "./chat-helpers.mjs";

const T = { timeout: 120_000 };
const FLAGS = { messageRate: 1000, messageBurst: 1000 };
const BOOK_A = 2701; // Moby-Dick: receives the last, in-flight wave
const BOOK_B = 1342; // Pride and Prejudice: everything acked before the crash
const WRITERS = 20;
const PER_WRITER_A = 40;
const PER_WRITER_B = 12;
const LAST_WAVE = 15;

let dataDir;
let server;
let clients;

/** Everything the clients know was stored: acked or broadcast, per book, by _id. */
const known = { [BOOK_A]: new Map(), [BOOK_B]: new Map() };
/** Contents posted in the final wave (whose acks may never have arrived). */
const inFlightContents = new Set();
/** History right after the crash-restart, per book. */
const afterCrash = {};

function remember(m, how) {
  assertMessage(assert, m);
  const map = known[m.bookId];
  assert.ok(map, `a message for an unexpected book ${m.bookId}`);
  const prev = map.get(m._id);
  if (prev) assert.deepEqual(m, prev, `${how}: the same _id always carries the same message`);
  else map.set(m._id, m);
}

const sortedDesc = (map) => [...map.values()].sort(byIdAsc).reverse();

async function restart() {
  server = await startChatServer({ shards: 2, dataDir, flags: FLAGS });
  clients = new ChatClients(server.url);
}

/** A successful joinRoom ack: the room, and who is here with the joiner listed first. */
function assertJoinAck(ack, bookId, joiner) {
  assert.deepEqual(Object.keys(ack ?? {}).sort(), ["memberCount", "members", "ok", "room"], JSON.stringify(ack));
  assert.equal(ack.ok, true);
  assert.equal(ack.room, `book_${bookId}`);
  assert.deepEqual(ack.members[0], { userId: joiner.userId, username: joiner.username });
  assert.ok(ack.memberCount >= ack.members.length, JSON.stringify(ack));
}

/** A fresh client's previousMessages for `bookId`. */
async function history(bookId) {
  const s = await clients.connect();
  const reader = newUser("reader");
  const { ack, previous } = await join(s, { bookId, ...reader });
  assertJoinAck(ack, bookId, reader);
  return previous;
}

describe("durability: readrealm-chat --shards 2 killed with SIGKILL and restarted on the same data dir", skipUnlessOwnServer("restarts on the same data dir (the baselines keep history in memory)"), () => {
  before(async () => {
    dataDir = await makeDataDir();
  });

  after(async () => {
    clients?.closeAll();
    if (server && !server.exited) await server.stop();
    await removeDir(dataDir);
  });

  test("every acknowledged or broadcast message is in previousMessages after a crash, in _id order; the 50 newest acked are the first 50 of history", T, async () => {
    await restart();
    const writers = [];
    for (let i = 0; i < WRITERS; i++) {
      const socket = await clients.connect(CONFIGS[i % CONFIGS.length]);
      const user = newUser(`writer${i}`);
      for (const bookId of [BOOK_A, BOOK_B]) {
        const { ack, previous } = await join(socket, { bookId, ...user });
        assertJoinAck(ack, bookId, user);
        assert.ok(Array.isArray(previous));
      }
      writers.push({ socket, user, i });
    }

    // Waves of acked posts: every writer, both books, 8 requests in flight per writer.
    await Promise.all(
      writers.map(async (w) => {
        const jobs = [];
        for (let k = 0; k < PER_WRITER_A; k++) jobs.push({ bookId: BOOK_A, content: `A w${w.i} #${k}` });
        for (let k = 0; k < PER_WRITER_B; k++) jobs.splice(k * 3 + 1, 0, { bookId: BOOK_B, content: `B w${w.i} #${k}` });
        for (let j = 0; j < jobs.length; j += 8) {
          const acks = await Promise.all(
            jobs.slice(j, j + 8).map((job) => post(w.socket, { ...job, ...w.user })),
          );
          for (const a of acks) {
            assert.equal(a.ok, true, JSON.stringify(a));
            remember(a.message, "ack");
          }
        }
      }),
    );
    const totalA = WRITERS * PER_WRITER_A;
    const totalB = WRITERS * PER_WRITER_B;
    assert.equal(known[BOOK_A].size, totalA);
    assert.equal(known[BOOK_B].size, totalB);
    for (const w of writers) {
      await waitUntil(() => w.socket.rec.count("newMessage") >= totalA + totalB, 15_000, `writer ${w.i} has every newMessage`);
    }
    // Before the crash: one order per room for everyone, the _id order. (Messages of
    // different rooms may interleave differently for different members: the contract orders
    // each room, not the rooms against each other.)
    const reference = writers[0].socket.rec.of("newMessage");
    for (const w of writers) {
      const stream = w.socket.rec.of("newMessage");
      for (const bookId of [BOOK_A, BOOK_B]) {
        const ids = (s) => s.filter((m) => m.bookId === bookId).map((m) => m._id);
        assert.deepEqual(ids(stream), ids(reference), `writer ${w.i} saw book ${bookId} in the same sequence`);
      }
      for (const bookId of [BOOK_A, BOOK_B]) {
        assertStrictlyIncreasingIds(assert, stream.filter((m) => m.bookId === bookId), `writer ${w.i} book ${bookId}`);
      }
      for (const m of stream) remember(m, "newMessage");
    }

    // The last wave: fired without waiting; SIGKILL once a few of its acks came back.
    let waveAcks = 0;
    const wave = [];
    for (let k = 0; k < LAST_WAVE; k++) {
      for (const w of writers) {
        const content = `A w${w.i} last #${k}`;
        inFlightContents.add(content);
        wave.push(
          post(w.socket, { bookId: BOOK_A, ...w.user, content }).then(
            (a) => {
              waveAcks++;
              if (a.ok) remember(a.message, "last-wave ack");
              return a;
            },
            () => null, // the server died before answering: not acknowledged
          ),
        );
      }
    }
    await waitUntil(() => waveAcks >= 10, 10_000, "the first acks of the last wave");
    const exit = await server.kill9();
    assert.equal(exit.signal, "SIGKILL", `killed by SIGKILL, not exited before (${JSON.stringify(exit)})`);
    // Whatever the server had already written to the sockets still arrives; then they close.
    await waitUntil(() => writers.every((w) => !w.socket.connected), 10_000, "every writer noticed the crash");
    const waveResults = await Promise.all(wave);
    for (const w of writers) for (const m of w.socket.rec.of("newMessage")) remember(m, "newMessage");
    clients.closeAll();
    const ackedInWave = waveResults.filter((a) => a?.ok).length;

    await restart();
    for (const bookId of [BOOK_A, BOOK_B]) afterCrash[bookId] = await history(bookId);

    // Book B: everything was acked long before the crash: history is exactly the 50 newest.
    const histB = afterCrash[BOOK_B];
    assert.deepEqual(
      histB.map((m) => m._id),
      sortedDesc(known[BOOK_B]).slice(0, 50).map((m) => m._id),
      "book B: previousMessages = the 50 newest acknowledged messages (by _id), newest first",
    );
    assert.deepEqual(histB, sortedDesc(known[BOOK_B]).slice(0, 50), "book B: the messages are unchanged");

    // Book A: messages of the last wave may have been stored without their ack getting out.
    const histA = afterCrash[BOOK_A];
    assert.equal(histA.length, 50, "book A: 50 messages");
    for (const m of histA) assertMessage(assert, m, { bookId: BOOK_A });
    const asc = [...histA].reverse();
    assertStrictlyIncreasingIds(assert, asc, "book A history (reversed)");
    const unknown = histA.filter((m) => !known[BOOK_A].has(m._id));
    for (const m of unknown) {
      assert.ok(
        inFlightContents.has(m.content),
        `book A: a message nobody was told about is in history and was not in flight: ${JSON.stringify(m)}`,
      );
    }
    for (const m of histA.filter((x) => known[BOOK_A].has(x._id))) {
      assert.deepEqual(m, known[BOOK_A].get(m._id), "book A: a known message comes back unchanged");
    }
    const cutoff = histA[histA.length - 1]._id;
    const expectedKnown = sortedDesc(known[BOOK_A]).filter((m) => m._id >= cutoff);
    const missing = expectedKnown.filter((m) => !histA.some((x) => x._id === m._id));
    assert.deepEqual(
      missing.map((m) => `${m._id} ${m.content}`),
      [],
      `book A: every acked/broadcast message among the newest 50 survived (${ackedInWave} of ${wave.length} last-wave posts were acked)`,
    );
    assert.deepEqual(
      histA.filter((m) => known[BOOK_A].has(m._id)),
      expectedKnown,
      "book A: acked messages in _id order",
    );
    assert.deepEqual(
      histA.filter((m) => known[BOOK_A].has(m._id)),
      sortedDesc(known[BOOK_A]).slice(0, 50 - unknown.length),
      "book A: the newest acked messages are exactly history's first 50 (apart from stored-but-unacked in-flight ones)",
    );
    // Every pre-wave message the history window reaches is there: the window holds only messages
    // newer than or equal to the oldest of those (the history is the store's newest 50).
    const allKnownIds = new Set([...known[BOOK_A].keys(), ...known[BOOK_B].keys()]);
    assert.ok(allKnownIds.size === known[BOOK_A].size + known[BOOK_B].size, "_ids are unique across books");
  });

  test("after the crash-restart the next message gets an _id greater than all before it and history continues in order", T, async () => {
    assert.ok(afterCrash[BOOK_A], "the crash test ran");
    const s = await clients.connect();
    const u = newUser("after");
    for (const bookId of [BOOK_A, BOOK_B]) {
      const { ack } = await join(s, { bookId, ...u });
      assert.equal(ack.ok, true);
    }
    const allIds = new Set([...known[BOOK_A].keys(), ...known[BOOK_B].keys(), ...afterCrash[BOOK_A].map((m) => m._id)]);
    const newest = {
      [BOOK_A]: [...known[BOOK_A].keys(), ...afterCrash[BOOK_A].map((m) => m._id)].sort().at(-1),
      [BOOK_B]: [...known[BOOK_B].keys()].sort().at(-1),
    };
    const fresh = { [BOOK_A]: [], [BOOK_B]: [] };
    for (let k = 0; k < 6; k++) {
      for (const bookId of [BOOK_A, BOOK_B]) {
        const a = await post(s, { bookId, ...u, content: `after restart ${bookId} #${k}` });
        assert.equal(a.ok, true, JSON.stringify(a));
        assertMessage(assert, a.message, { bookId });
        assert.ok(!allIds.has(a.message._id), `_id ${a.message._id} is never reused`);
        assert.ok(a.message._id > newest[bookId], `_id ${a.message._id} sorts after every earlier message of book ${bookId} (${newest[bookId]})`);
        fresh[bookId].push(a.message);
      }
    }
    for (const bookId of [BOOK_A, BOOK_B]) {
      assertStrictlyIncreasingIds(assert, fresh[bookId], `book ${bookId} after restart`);
      const stream = await s.rec.waitCount("newMessage", 12);
      assert.deepEqual(stream.filter((m) => m.bookId === bookId), fresh[bookId], "newMessage after restart");
      const hist = await history(bookId);
      assert.deepEqual(
        hist,
        [...[...fresh[bookId]].reverse(), ...afterCrash[bookId]].slice(0, 50),
        `book ${bookId}: the new messages come first, then the history from before, in order`,
      );
      afterCrash[bookId] = hist;
    }
  });

  test("a message acked right before SIGKILL is in history after the restart (crash immediately after the acks)", T, async () => {
    const s = await clients.connect(CONFIGS[1]);
    const u = newUser("last-words");
    await join(s, { bookId: BOOK_B, ...u });
    const acks = await Promise.all(Array.from({ length: 20 }, (_, k) => post(s, { bookId: BOOK_B, ...u, content: `final ${k}` })));
    assert.ok(acks.every((a) => a.ok));
    await server.kill9(); // at once after the last ack
    clients.closeAll();
    await restart();
    const hist = await history(BOOK_B);
    const acked = acks.map((a) => a.message).sort(byIdAsc).reverse();
    assert.deepEqual(hist.slice(0, 20), acked, "the 20 acked messages are the newest 20, newest first");
    assert.deepEqual(hist.slice(20), afterCrash[BOOK_B].slice(0, 30), "followed by the earlier history");
    afterCrash[BOOK_B] = hist;
  });

  test("a graceful restart (SIGTERM) keeps exactly the same history", T, async () => {
    const before = {};
    for (const bookId of [BOOK_A, BOOK_B]) before[bookId] = await history(bookId);
    assert.deepEqual(before[BOOK_B], afterCrash[BOOK_B]);
    clients.closeAll();
    const exit = await server.stop();
    assert.notEqual(exit?.signal, "SIGKILL", `the server stopped on SIGTERM within 5 s (${JSON.stringify(exit)})`);
    await restart();
    for (const bookId of [BOOK_A, BOOK_B]) {
      assert.deepEqual(await history(bookId), before[bookId], `book ${bookId}: the same 50 messages`);
    }
    await sleep(GRACE_MS);
  });
});
