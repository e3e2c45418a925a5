// A TCP proxy on a free loopback port in front of a server, for tests that need to control the
// network between a client and the server: refuse new connections (so a client's reconnection
// gap lasts as long as the test needs), black-hole live ones (a dead network: no bytes, no FIN,
// so the server sees a ping timeout), and retarget to another port (a restarted server, or
// another node of a cluster). Used by recovery.test.mjs and cluster.test.mjs.

import net from "node:net";

/** A TCP proxy to 127.0.0.1:`target` that can refuse, black-hole and retarget. */
export async function startProxy(target) {
  const live = new Set();
  // Connections accepted while the network is dead: held open, carrying nothing.
  const held = new Set();
  const proxy = { target, mode: "forward" };
  const server = net.createServer((client) => {
    if (proxy.mode === "refuse") {
      client.destroy();
      return;
    }
    if (proxy.mode === "hole") {
      held.add(client);
      client.on("error", () => {});
      client.on("close", () => held.delete(client));
      return;
    }
    const upstream = net.connect(proxy.target, "127.0.0.1");
    const pair = { client, upstream, holed: false };
    live.add(pair);
    const forward = (from, to) =>
      from.on("data", (chunk) => {
        if (!pair.holed) to.write(chunk);
      });
    forward(client, upstream);
    forward(upstream, client);
    // A close crosses the proxy like bytes do: not while the pair is black-holed (a dead
    // network carries no FIN either).
    const end = () => {
      if (pair.holed) return;
      live.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const side of [client, upstream]) {
      side.on("close", end);
      side.on("error", end);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.url = `http://127.0.0.1:${server.address().port}`;
  const dropHeld = () => {
    for (const client of held) client.destroy();
    held.clear();
  };
  /**
   * New connections are closed at once (the client's reconnection attempts fail); any held by
   * a dead network are closed now.
   */
  proxy.refuse = () => {
    proxy.mode = "refuse";
    dropHeld();
  };
  proxy.forward = () => (proxy.mode = "forward");
  /** Live connections stop carrying bytes either way, without closing (a dead network). */
  proxy.blackHole = () => {
    for (const pair of live) pair.holed = true;
  };
  /**
   * A dead network for all: live connections are black-holed, and new ones are accepted but
   * carry nothing (a polling client's next request hangs as it would there, not fail at once).
   */
  proxy.deadNetwork = () => {
    proxy.mode = "hole";
    proxy.blackHole();
  };
  proxy.close = async () => {
    dropHeld();
    for (const pair of live) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    await new Promise((resolve) => server.close(resolve));
  };
  return proxy;
}
