// Socket.IO behaviours checked with socket.io-client 4.8 for each of the three client
// configurations: default (HTTP long-polling, then upgrade to websocket), websocket-only and
// polling-only. One `protocol-testserver --shards 2` serves the whole file.

import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";

import {
  CONFIGS,
  Clients,
  WAIT_MS,
  allBytes,
  ready,
  sleep,
  startServer,
  toBuffer,
  waitFor,
  waitUntil,
  withTimeout,
} from "./helpers.mjs";

let server;

before(async () => {
  server = await startServer({ shards: 2 });
});

after(async () => {
  await server?.stop();
});

const MIXED_ARGS = [
  1,
  "two",
  { a: [1, 2, { b: null }], s: "üñí€😀 \"quoted\" \\ back\nslash \u2028", empty: {} },
  true,
  false,
  null,
  3.5,
  -42,
  [],
  ["nested", ["deeper", [0]]],
];

/** Emits `echo` with `args` and resolves with the arguments of the `echo` that comes back. */
async function echo(socket, ...args) {
  const back = waitFor(socket, "echo");
  socket.emit("echo", ...args);
  return back;
}

/** Emits `ack` with a callback and resolves with all acknowledged arguments. */
function ackAll(socket, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(WAIT_MS).emit("ack", ...args, (err, ...response) => {
      if (err) reject(new Error(`no ack within ${WAIT_MS} ms: ${err.message}`));
      else resolve(response);
    });
  });
}

function expectedTransport(config) {
  return config.key === "polling" ? "polling" : "websocket";
}

for (const config of CONFIGS) {
  describe(`${config.name} client`, () => {
    let clients;

    beforeEach(() => {
      clients = new Clients(server.url);
    });

    afterEach(() => {
      clients.closeAll();
    });

    test("connects to / with a socket id and echoes mixed JSON arguments back equal", async () => {
      const socket = await clients.connect(config);
      assert.equal(typeof socket.id, "string");
      assert.ok(socket.id.length > 0, "socket.id is set");
      assert.equal(socket.io.engine.transport.name, expectedTransport(config));
      const back = await echo(socket, ...MIXED_ARGS);
      assert.deepEqual(back, MIXED_ARGS);
    });

    if (config.upgrades) {
      test("upgrades from polling to websocket and keeps events emitted during the upgrade", async () => {
        const socket = clients.create(config);
        const engine = socket.io.engine;
        assert.equal(engine.transport.name, "polling", "the default client starts with polling");
        const upgraded = waitFor(engine, "upgrade");
        upgraded.catch(() => {});
        const received = [];
        socket.on("echo", (n) => received.push(n));
        // Emit from the very start (buffered until CONNECT, then flushed over polling), a burst
        // when the connect event fires, and a burst while the engine pauses polling to upgrade.
        let n = 0;
        const burst = (count) => {
          for (let i = 0; i < count; i++) socket.emit("echo", n++);
        };
        const pump = setInterval(() => burst(1), 1);
        socket.once("connect", () => burst(20));
        let duringUpgrade = 0;
        engine.once("upgrading", () => {
          duringUpgrade = 20;
          burst(20);
        });
        try {
          await ready(socket, { ...config, upgrades: false });
          const [transport] = await upgraded;
          assert.equal(transport.name, "websocket");
          assert.equal(socket.io.engine.transport.name, "websocket");
        } finally {
          clearInterval(pump);
        }
        assert.equal(duringUpgrade, 20, "the engine went through the upgrading phase");
        burst(1);
        const total = n;
        await waitUntil(() => received.length >= total, WAIT_MS, `${total} echoes`).catch((e) => {
          throw new Error(`${e.message}; received ${received.length}/${total}`);
        });
        await sleep(100);
        assert.deepEqual(
          received,
          Array.from({ length: total }, (_, i) => i),
          "every event emitted around the upgrade comes back once, in order",
        );
      });
    }

    test("emitWithAck('ack', ...) is acknowledged with the same arguments", async () => {
      const socket = await clients.connect(config);
      const payload = { text: "hello", list: [1, "2", null], flag: true };
      const response = await socket.timeout(WAIT_MS).emitWithAck("ack", payload);
      assert.deepEqual(response, payload);
      const all = await ackAll(socket, ...MIXED_ARGS);
      assert.deepEqual(all, MIXED_ARGS, "a multi-argument ack returns every argument");
      // Several acks in flight at once are matched to the right callers.
      const many = await Promise.all(
        Array.from({ length: 20 }, (_, i) => socket.timeout(WAIT_MS).emitWithAck("ack", { i })),
      );
      assert.deepEqual(
        many,
        Array.from({ length: 20 }, (_, i) => ({ i })),
      );
    });

    test("server-to-client ack: the question handler's ack value comes back as answer", async () => {
      const socket = await clients.connect(config);
      const payload = { q: "what is six times seven?", n: 7 };
      const question = new Promise((resolve) => {
        socket.once("question", (...args) => {
          const cb = args.pop();
          assert.equal(typeof cb, "function", "question carries an ack callback");
          cb({ got: args, answer: 42 }, "second");
          resolve(args);
        });
      });
      const answer = waitFor(socket, "answer");
      socket.emit("ask", payload);
      const questionArgs = await withTimeout(question, WAIT_MS, '"question"');
      assert.deepEqual(questionArgs, [payload], "question carries the asked payload");
      const answerArgs = await answer;
      assert.deepEqual(answerArgs, [{ got: [payload], answer: 42 }, "second"]);
    });

    test("binary nested in an object and at top level comes back byte-equal through echo", async () => {
      const socket = await clients.connect(config);
      const top = allBytes(1000);
      const nested = Uint8Array.from([0, 1, 2, 253, 254, 255]);
      const deep = Buffer.from("\u00ff\u0000 not utf-8 \xc3\x28", "latin1");
      const empty = Buffer.alloc(0);
      const back = await echo(
        socket,
        { name: "file", data: nested, more: { list: ["x", { deep }, 3] } },
        top,
        "plain",
        empty,
      );
      assert.equal(back.length, 4);
      const [obj, topBack, plain, emptyBack] = back;
      assert.equal(obj.name, "file");
      assert.deepEqual(toBuffer(obj.data), Buffer.from(nested));
      assert.equal(obj.more.list[0], "x");
      assert.deepEqual(toBuffer(obj.more.list[1].deep), deep);
      assert.equal(obj.more.list[2], 3);
      assert.deepEqual(toBuffer(topBack), top);
      assert.equal(plain, "plain");
      assert.equal(toBuffer(emptyBack).length, 0);
    });

    test("binary comes back byte-equal through an ack", async () => {
      const socket = await clients.connect(config);
      const a = allBytes(4096);
      const b = Uint8Array.from([9, 8, 7]);
      const single = await socket.timeout(WAIT_MS).emitWithAck("ack", { blob: a, label: "a" });
      assert.equal(single.label, "a");
      assert.deepEqual(toBuffer(single.blob), a);
      const [first, second, third] = await ackAll(socket, b, { inner: [a] }, "text");
      assert.deepEqual(toBuffer(first), Buffer.from(b));
      assert.deepEqual(toBuffer(second.inner[0]), a);
      assert.equal(third, "text");
    });

    test("namespace /custom works alongside / on the same manager (multiplexed)", async () => {
      const root = await clients.connect(config);
      const custom = clients.multiplex(root, "/custom");
      await ready(custom, { ...config, upgrades: false });
      assert.equal(custom.io, root.io, "both sockets share one manager");
      assert.ok(custom.id && custom.id !== root.id, "each namespace socket has its own id");
      assert.equal(custom.io.engine.transport.name, expectedTransport(config));

      let rootEchoes = 0;
      let customEchoes = 0;
      root.on("echo", () => rootEchoes++);
      custom.on("echo", () => customEchoes++);
      const customBack = await echo(custom, "on custom", { nsp: "/custom" });
      assert.deepEqual(customBack, ["on custom", { nsp: "/custom" }]);
      const rootBack = await echo(root, "on root", Buffer.from([1, 2, 3]));
      assert.equal(rootBack[0], "on root");
      assert.deepEqual(toBuffer(rootBack[1]), Buffer.from([1, 2, 3]));
      const acked = await custom.timeout(WAIT_MS).emitWithAck("ack", "custom-ack");
      assert.equal(acked, "custom-ack");
      await sleep(100);
      assert.equal(rootEchoes, 1, "/ received only its own echo");
      assert.equal(customEchoes, 1, "/custom received only its own echo");
    });

    test("server-side disconnect of /custom leaves / connected on the same manager", async () => {
      const root = await clients.connect(config);
      const custom = clients.multiplex(root, "/custom");
      await ready(custom, { ...config, upgrades: false });
      const gone = waitFor(custom, "disconnect");
      custom.emit("bye");
      const [reason] = await gone;
      assert.equal(reason, "io server disconnect");
      assert.equal(root.connected, true);
      const back = await echo(root, "still here");
      assert.deepEqual(back, ["still here"]);
    });

    test("unknown namespace /nope gets connect_error 'Invalid namespace'", async () => {
      const nope = clients.create(config, "/nope");
      const [err] = await waitFor(nope, "connect_error");
      assert.equal(err.message, "Invalid namespace");
      assert.equal(nope.connected, false);

      // On a manager that already has / connected, the refusal does not break /.
      const root = await clients.connect(config);
      const nope2 = clients.multiplex(root, "/nope");
      const [err2] = await waitFor(nope2, "connect_error");
      assert.equal(err2.message, "Invalid namespace");
      const back = await echo(root, "after refusal");
      assert.deepEqual(back, ["after refusal"]);
    });

    test("middleware refusal: auth token 'bad' gets connect_error 'unauthorized' with data", async () => {
      const refused = clients.create(config, "/", { auth: { token: "bad" } });
      const [err] = await waitFor(refused, "connect_error");
      assert.equal(err.message, "unauthorized");
      assert.deepEqual(err.data, { reason: "bad token" });
      assert.equal(refused.connected, false);

      const accepted = await clients.connect(config, "/", { auth: { token: "good" } });
      const back = await echo(accepted, "authorized");
      assert.deepEqual(back, ["authorized"]);
    });

    test("server-side disconnect (bye) gives disconnect reason 'io server disconnect'", async () => {
      const socket = await clients.connect(config);
      const gone = waitFor(socket, "disconnect");
      socket.emit("bye");
      const [reason] = await gone;
      assert.equal(reason, "io server disconnect");
      assert.equal(socket.connected, false);
    });

    test("client disconnect then socket.connect() reconnects and events flow", async () => {
      const socket = await clients.connect(config);
      const firstId = socket.id;
      assert.deepEqual(await echo(socket, "before"), ["before"]);

      const gone = waitFor(socket, "disconnect");
      socket.disconnect();
      const [reason] = await gone;
      assert.equal(reason, "io client disconnect");
      assert.equal(socket.connected, false);

      socket.connect();
      await ready(socket, config);
      assert.equal(socket.connected, true);
      assert.ok(socket.id, "a new id after reconnecting");
      assert.notEqual(socket.id, firstId, "the reconnected socket is a new session");
      assert.deepEqual(await echo(socket, "after", { n: 2 }), ["after", { n: 2 }]);
      assert.equal(await socket.timeout(WAIT_MS).emitWithAck("ack", "acked"), "acked");
    });

    test("a 200 kB string payload round trips through echo and ack", async () => {
      const socket = await clients.connect(config);
      const chunk = "abcdefghijklmnopqrstuvwxyz0123456789-é€😀";
      let big = "";
      while (big.length < 200_000) big += chunk;
      const [back] = await echo(socket, { big });
      assert.equal(back.big.length, big.length);
      assert.ok(back.big === big, "the 200 kB string is unchanged");
      const acked = await socket.timeout(WAIT_MS).emitWithAck("ack", big);
      assert.ok(acked === big, "the 200 kB string is unchanged through an ack");
      const blob = allBytes(200_000);
      const [blobBack] = await echo(socket, blob);
      assert.ok(toBuffer(blobBack).equals(blob), "200 kB of binary is unchanged");
    });
  });
}
