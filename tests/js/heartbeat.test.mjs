// Engine.IO heartbeat with short timings: `--ping-interval 200 --ping-timeout 200`. The server
// pings every 200 ms and the client answers; the client also closes the connection itself if
// no ping arrives within pingInterval + pingTimeout, so staying connected proves both sides.

import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import assert from "node:assert/strict";

import { CONFIGS, Clients, sleep, startServer, waitFor } from "./helpers.mjs";

const HOLD_MS = 1500;

let server;

before(async () => {
  server = await startServer({ shards: 2, pingInterval: 200, pingTimeout: 200 });
});

after(async () => {
  await server?.stop();
});

describe("heartbeat with --ping-interval 200 --ping-timeout 200", () => {
  let clients;

  beforeEach(() => {
    clients = new Clients(server.url);
  });

  afterEach(() => {
    clients.closeAll();
  });

  for (const config of CONFIGS) {
    test(`a ${config.name} client answering pings stays connected for 1.5 s`, async () => {
      const socket = await clients.connect(config);
      const engine = socket.io.engine;
      // engine.io-client 6.6 keeps the handshake's timings in private fields.
      assert.equal(engine._pingInterval, 200, "handshake advertises pingInterval 200");
      assert.equal(engine._pingTimeout, 200, "handshake advertises pingTimeout 200");
      let pings = 0;
      engine.on("ping", () => pings++);
      const disconnects = [];
      socket.on("disconnect", (reason) => disconnects.push(reason));
      await sleep(HOLD_MS);
      assert.deepEqual(disconnects, [], "no disconnect while pings are answered");
      assert.equal(socket.connected, true);
      assert.equal(socket.io.engine, engine, "still the same Engine.IO session");
      assert.ok(pings >= 4, `the server kept pinging (${pings} pings in ${HOLD_MS} ms)`);
      const back = waitFor(socket, "echo");
      socket.emit("echo", "alive");
      assert.deepEqual(await back, ["alive"]);
    });

    test(`a ${config.name} client that stops answering pings is closed by the server`, async () => {
      const socket = await clients.connect(config);
      const engine = socket.io.engine;
      // Drop the client's pongs; it still receives pings, so its own ping timer never fires and
      // any close must come from the server's ping timeout (interval 200 + timeout 200 ms).
      // (engine.io-client 6.6 answers a ping with its private `_sendPacket("pong")`.)
      const sendPacket = engine._sendPacket.bind(engine);
      assert.equal(typeof sendPacket, "function");
      engine._sendPacket = (type, ...rest) => (type === "pong" ? undefined : sendPacket(type, ...rest));
      const started = Date.now();
      const [reason] = await waitFor(socket, "disconnect", 3000);
      const elapsed = Date.now() - started;
      assert.ok(
        reason === "transport close" || reason === "transport error",
        `disconnect reason is a transport close/error, got ${reason}`,
      );
      assert.ok(elapsed >= 250, `closed after ${elapsed} ms, not before the ping timeout ran out`);
    });
  }
});
