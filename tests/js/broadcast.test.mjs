// Room broadcast across shards: `protocol-testserver --shards 2` accepts on one SO_REUSEPORT
// listener per shard and the kernel spreads connections over them by connection hash, so 40
// clients land on both shards. Every member must get every broadcast exactly once, whichever
// shard it and the sender live on; non-members get none.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { CONFIGS, Clients, WAIT_MS, sleep, startServer, waitUntil } from "./helpers.mjs";

const MEMBERS = 40;
const OUTSIDERS = 4;
const SENDERS = 6;
const PER_SENDER = 3;
/** How long to keep listening for duplicates or strays after everything expected arrived. */
const GRACE_MS = 300;

let server;
let clients;
/** @type {{ socket: import("socket.io-client").Socket, config: object, name: string, got: Map<string, number> }[]} */
let members = [];
let outsiders = [];

function track(socket, config, name) {
  const entry = { socket, config, name, got: new Map() };
  socket.on("broadcast", (payload) => {
    const key = `${payload?.phase}:${payload?.from}:${payload?.n}`;
    entry.got.set(key, (entry.got.get(key) ?? 0) + 1);
  });
  return entry;
}

before(async () => {
  server = await startServer({ shards: 2 });
  clients = new Clients(server.url);
  // Connect in small batches so that the polling handshakes don't all queue at once.
  const specs = Array.from({ length: MEMBERS + OUTSIDERS }, (_, i) => ({
    i,
    config: CONFIGS[i % CONFIGS.length],
    member: i < MEMBERS,
  }));
  for (let k = 0; k < specs.length; k += 8) {
    const batch = specs.slice(k, k + 8);
    const entries = await Promise.all(
      batch.map(async ({ i, config, member }) => {
        const socket = await clients.connect(config);
        const name = `${member ? "member" : "outsider"}-${i}-${config.key}`;
        return { member, entry: track(socket, config, name) };
      }),
    );
    for (const { member, entry } of entries) (member ? members : outsiders).push(entry);
  }
  const joined = await Promise.all(
    members.map((m) => m.socket.timeout(WAIT_MS).emitWithAck("join", "r1")),
  );
  assert.ok(joined.every((v) => v === true), "every join is acked with true");
  // Outsiders join a different room, so they are room members somewhere, just not in r1.
  const joinedOther = await Promise.all(
    outsiders.map((o) => o.socket.timeout(WAIT_MS).emitWithAck("join", "r2")),
  );
  assert.ok(joinedOther.every((v) => v === true));
});

after(async () => {
  clients?.closeAll();
  await server?.stop();
});

/** The senders: spread over the three client configurations. */
function senders() {
  return Array.from({ length: SENDERS }, (_, k) => members[(k * 7) % MEMBERS]);
}

async function broadcastRound(phase, exceptSelf) {
  const from = senders();
  const acks = [];
  for (const sender of from) {
    for (let n = 0; n < PER_SENDER; n++) {
      acks.push(
        sender.socket
          .timeout(WAIT_MS)
          .emitWithAck("broadcast", "r1", { phase, from: sender.name, n }, exceptSelf),
      );
    }
  }
  const results = await Promise.all(acks);
  assert.ok(results.every((v) => v === true), "every broadcast request is acked with true");
  return from;
}

function expectedKeys(phase, from, exceptSelf, member) {
  const keys = [];
  for (const sender of from) {
    if (exceptSelf && sender === member) continue;
    for (let n = 0; n < PER_SENDER; n++) keys.push(`${phase}:${sender.name}:${n}`);
  }
  return keys;
}

function countPhase(entry, phase) {
  let total = 0;
  for (const [key, count] of entry.got) if (key.startsWith(`${phase}:`)) total += count;
  return total;
}

function describeMissing(phase, from, exceptSelf) {
  const lines = [];
  for (const m of members) {
    const missing = expectedKeys(phase, from, exceptSelf, m).filter((k) => !m.got.has(k));
    if (missing.length) lines.push(`${m.name} (${m.socket.io.engine?.transport?.name}) misses ${missing.join(", ")}`);
  }
  return lines.join("\n");
}

async function awaitDelivery(phase, from, exceptSelf) {
  try {
    await waitUntil(
      () => members.every((m) => expectedKeys(phase, from, exceptSelf, m).every((k) => m.got.has(k))),
      10_000,
      `every member has every phase-${phase} broadcast`,
    );
  } catch (e) {
    throw new Error(`${e.message}\n${describeMissing(phase, from, exceptSelf)}`);
  }
  await sleep(GRACE_MS);
}

describe("cross-shard room broadcast with 40 mixed-transport clients on 2 shards", () => {
  test("every member of r1 receives every broadcast exactly once, non-members none", async () => {
    const from = await broadcastRound(1, false);
    await awaitDelivery(1, from, false);
    for (const m of members) {
      const expected = expectedKeys(1, from, false, m);
      for (const key of expected) {
        assert.equal(m.got.get(key), 1, `${m.name} got ${key} ${m.got.get(key) ?? 0} times`);
      }
      assert.equal(countPhase(m, 1), expected.length, `${m.name} got nothing unexpected`);
    }
    for (const o of outsiders) {
      assert.equal(countPhase(o, 1), 0, `${o.name} (not in r1) got ${countPhase(o, 1)} broadcasts`);
    }
  });

  test("with exceptSelf=true the sender does not receive its own broadcast; all others do once", async () => {
    const from = await broadcastRound(2, true);
    await awaitDelivery(2, from, true);
    for (const m of members) {
      const expected = expectedKeys(2, from, true, m);
      for (const key of expected) {
        assert.equal(m.got.get(key), 1, `${m.name} got ${key} ${m.got.get(key) ?? 0} times`);
      }
      for (let n = 0; n < PER_SENDER; n++) {
        assert.ok(!m.got.has(`2:${m.name}:${n}`), `${m.name} received its own exceptSelf broadcast`);
      }
      assert.equal(countPhase(m, 2), expected.length, `${m.name} got nothing unexpected`);
    }
    for (const o of outsiders) {
      assert.equal(countPhase(o, 2), 0, `${o.name} (not in r1) got ${countPhase(o, 2)} broadcasts`);
    }
  });

  test("after leaving r1 a client no longer receives r1 broadcasts", async () => {
    const leaver = members[MEMBERS - 1];
    assert.equal(await leaver.socket.timeout(WAIT_MS).emitWithAck("leave", "r1"), true);
    const sender = members[0];
    assert.equal(
      await sender.socket.timeout(WAIT_MS).emitWithAck("broadcast", "r1", { phase: 3, from: sender.name, n: 0 }, false),
      true,
    );
    const stayers = members.slice(0, MEMBERS - 1);
    await waitUntil(
      () => stayers.every((m) => m.got.get(`3:${sender.name}:0`) === 1),
      10_000,
      "every remaining member has the phase-3 broadcast",
    );
    await sleep(GRACE_MS);
    assert.equal(countPhase(leaver, 3), 0, "the client that left r1 got no r1 broadcast");
    for (const o of outsiders) assert.equal(countPhase(o, 3), 0);
  });
});
