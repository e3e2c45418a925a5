// The reading-room page after a lost connection, in chromium (support.mjs). While the page is
// away, another socket.io-client posts; when it is back, each message is on the page exactly
// once, in the order posted:
// - a dropped connection (the Engine.IO connection closed under the page; the reconnect held
//   off for a gap of the test's making, then once more reconnecting by itself) that the server
//   recovers (`socket.recovered === true`): the page does not join again, the server replays
//   the missed messages, and the page asks who is in the room (presence is not replayed);
//   the same across a restart of the server (SIGTERM, started again within the window);
// - a session that cannot be recovered (a clean `socket.disconnect()`): the page joins again
//   and merges `previousMessages`; with more missed messages than `previousMessages` holds, it
//   starts again from the newest page and "Load older messages" reaches back without a hole.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as support from "./support.mjs";
import { loadOlder, memberNames, messageTexts, waitForText, WAIT_MS } from "./support.mjs";

let server;
let baseUrl;
let browser;

before(async () => {
  // The gap of the last test is 60 messages from one connection: lift the per-connection rate.
  server = await support.startServer(["--message-rate", "10000", "--message-burst", "10000"]);
  baseUrl = server.baseUrl;
  browser = await support.launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

/** Record the names of the events the page's socket receives (to see whether it joined again). */
function recordEvents(page) {
  return page.evaluate(() => {
    window.received = [];
    window.socket.onAny((event) => window.received.push(event));
  });
}

/**
 * Take the page's connection away and hold it away until `back()` is called: `how` is "drop"
 * (the Engine.IO connection closed under socket.io-client, which would reconnect by itself; it
 * is held off so the gap is the test's) or "disconnect" (a clean Socket.IO disconnect, which
 * ends the session for good).
 */
async function goAway(page, how) {
  await page.evaluate((how) => {
    const socket = window.socket;
    window.sidBefore = socket.id;
    if (how === "drop") {
      socket.io.reconnection(false);
      socket.io.engine.close();
    } else {
      socket.disconnect();
    }
  }, how);
  await page.waitForFunction(() => !window.socket.connected, null, { timeout: WAIT_MS });
  await page.waitForSelector("#status:not(.online)", { timeout: WAIT_MS });
  return async function back() {
    await page.evaluate(() => {
      window.socket.io.reconnection(true);
      window.socket.connect();
    });
    await page.waitForFunction(() => window.socket.connected, null, { timeout: WAIT_MS });
    await page.waitForSelector("#status.online", { timeout: WAIT_MS });
  };
}

test("a recovered reconnect shows each missed message once, in order, without joining again", async () => {
  const BOOK = 2702;
  const ishmael = await support.reader(browser, baseUrl, BOOK, "Ishmael");
  const { page } = ishmael;
  const queequeg = await support.bareClient(browser, baseUrl, { bookId: BOOK, userId: "q", username: "Queequeg" });
  await queequeg.post(["before 1", "before 2"]);
  await waitForText(page, "#messages .msg .text", "before 2");
  await waitForText(page, "#member-list li", "Queequeg");

  await recordEvents(page);
  const back = await goAway(page, "drop");
  await queequeg.post(["gap 1", "gap 2", "gap 3"]);
  const flask = await support.bareClient(browser, baseUrl, { bookId: BOOK, userId: "f", username: "Flask" });
  await back();

  const after = await page.evaluate(() => ({
    recovered: window.socket.recovered,
    sameId: window.socket.id === window.sidBefore,
  }));
  assert.equal(after.recovered, true, "the server recovered the session (socket.recovered)");
  assert.equal(after.sameId, true, "a recovered socket keeps its id");

  await waitForText(page, "#messages .msg .text", "gap 3");
  await queequeg.post(["after"]);
  await waitForText(page, "#messages .msg .text", "after");
  assert.deepEqual(await messageTexts(page), ["before 1", "before 2", "gap 1", "gap 2", "gap 3", "after"]);
  const received = await page.evaluate(() => window.received);
  assert.ok(!received.includes("previousMessages"), `joined again: ${received.join(", ")}`);

  // Flask joined during the gap (not replayed): the page asked who is here.
  await waitForText(page, "#member-list li", "Flask");
  assert.deepEqual((await memberNames(page)).sort(), ["Flask", "Ishmael (you)", "Queequeg"]);
  assert.equal(await page.textContent("#member-count"), "3");

  // Once more, with socket.io-client reconnecting by itself (after its 0.5-1.5 s back-off):
  // messages posted as soon as the page is seen offline land in the gap or just after it.
  await page.evaluate(() => {
    window.received = [];
    window.reconnected = new Promise((resolve) => window.socket.io.once("reconnect", resolve));
    window.socket.io.engine.close();
  });
  await page.waitForSelector("#status:not(.online)", { timeout: WAIT_MS });
  await queequeg.post(["again 1", "again 2"]);
  await page.evaluate(() => window.reconnected);
  assert.equal(await page.evaluate(() => window.socket.recovered), true, "recovered after its own reconnect");
  await queequeg.post(["again 3"]);
  await waitForText(page, "#messages .msg .text", "again 3");
  assert.deepEqual(await messageTexts(page), [
    ...["before 1", "before 2", "gap 1", "gap 2", "gap 3", "after"],
    ...["again 1", "again 2", "again 3"],
  ]);
  assert.ok(!(await page.evaluate(() => window.received)).includes("previousMessages"));

  assert.deepEqual(ishmael.problems, [], "no page errors");
  await ishmael.context.close();
  for (const c of [queequeg, flask]) await c.close();
});

test("a session that cannot be recovered: the page joins again, each message once, in order", async () => {
  const BOOK = 2703;
  const ishmael = await support.reader(browser, baseUrl, BOOK, "Ishmael");
  const { page } = ishmael;
  const queequeg = await support.bareClient(browser, baseUrl, { bookId: BOOK, userId: "q", username: "Queequeg" });
  await queequeg.post(["before 1", "before 2"]);
  await waitForText(page, "#messages .msg .text", "before 2");

  await recordEvents(page);
  const back = await goAway(page, "disconnect");
  await queequeg.post(["gap 1", "gap 2"]);
  await back();

  // socket.io-client: `recovered = pid && pid === the pid sent` (false, or undefined without a pid).
  assert.notEqual(await page.evaluate(() => window.socket.recovered), true, "a clean disconnect ends the session");
  await waitForText(page, "#messages .msg .text", "gap 2");
  await queequeg.post(["after"]);
  await waitForText(page, "#messages .msg .text", "after");
  assert.deepEqual(await messageTexts(page), ["before 1", "before 2", "gap 1", "gap 2", "after"]);
  const received = await page.evaluate(() => window.received);
  assert.ok(received.includes("previousMessages"), `joined again: ${received.join(", ")}`);
  await waitForText(page, "#member-list li", "Queequeg");

  // More missed messages than previousMessages holds: the page starts from the newest 50 and
  // pages back down to what it showed before, with no hole and nothing twice.
  const back2 = await goAway(page, "disconnect");
  const gap = Array.from({ length: 60 }, (_, i) => `long gap ${String(i + 1).padStart(2, "0")}`);
  await queequeg.post(gap);
  await back2();
  await waitForText(page, "#messages .msg .text", gap[gap.length - 1]);
  assert.deepEqual(await messageTexts(page), gap.slice(-50), "the newest page, after a reset");
  let clicks = 0;
  while (await page.isVisible("#older")) {
    assert.ok(++clicks <= 3, "back to the messages shown before in a bounded number of pages");
    await loadOlder(page);
  }
  assert.deepEqual(await messageTexts(page), ["before 1", "before 2", "gap 1", "gap 2", "after", ...gap]);

  assert.deepEqual(ishmael.problems, [], "no page errors");
  await ishmael.context.close();
  await queequeg.close();
});

// Last in this file (with the next): it restarts the server under the other tests' clients.
test("across a server restart within the recovery window the page is recovered, each message once", async () => {
  const BOOK = 2704;
  const ishmael = await support.reader(browser, baseUrl, BOOK, "Ishmael");
  const { page } = ishmael;
  const queequeg = await support.bareClient(browser, baseUrl, { bookId: BOOK, userId: "q", username: "Queequeg" });
  await queequeg.post(["before the restart"]);
  await waitForText(page, "#messages .msg .text", "before the restart");
  await waitForText(page, "#member-list li", "Queequeg");

  await recordEvents(page);
  await page.evaluate(() => window.socket.io.reconnection(false)); // the gap is the test's
  await server.restart(); // SIGTERM: the readers are kept for the window; started again
  await page.waitForFunction(() => !window.socket.connected, null, { timeout: WAIT_MS });
  const starbuck = await support.bareClient(browser, baseUrl, { bookId: BOOK, userId: "s", username: "Starbuck" });
  await starbuck.post(["while away 1", "while away 2"]);
  // Queequeg's client reconnects by itself; let it be back first (see the todo test below for
  // a kept reader not yet back).
  await queequeg.page.waitForFunction(() => window.bare.connected && window.bare.recovered === true, null, {
    timeout: WAIT_MS,
  });
  await page.evaluate(() => {
    window.socket.io.reconnection(true);
    window.socket.connect();
  });
  await page.waitForFunction(() => window.socket.connected, null, { timeout: WAIT_MS });
  assert.equal(await page.evaluate(() => window.socket.recovered), true, "recovered across the restart");

  await waitForText(page, "#messages .msg .text", "while away 2");
  await starbuck.post(["after"]);
  await waitForText(page, "#messages .msg .text", "after");
  assert.deepEqual(await messageTexts(page), ["before the restart", "while away 1", "while away 2", "after"]);
  assert.ok(!(await page.evaluate(() => window.received)).includes("previousMessages"), "no join again");
  // Queequeg (back by itself) and Starbuck (joined while the page was away).
  await waitForText(page, "#member-list li", "Starbuck");
  assert.deepEqual((await memberNames(page)).sort(), ["Ishmael (you)", "Queequeg", "Starbuck"]);

  assert.deepEqual(ishmael.problems, [], "no page errors");
  await ishmael.context.close();
  for (const c of [queequeg, starbuck]) await c.close();
});

// The contract: a reader that dropped (here: the server's SIGTERM) stays in its rooms until its
// recovery window ends. Without a restart, `roomMembers` lists a dropped reader that has not come
// back yet; after a restart it does not until that reader recovers, and when it does it is taken
// back silently, so a page that asked in between never lists it. Kept as a todo (it runs, and
// reports, without failing the suite) until the server lists kept readers after a restart.
test(
  "after a restart, a kept reader that has not come back yet is listed",
  { todo: "server: kept readers are missing from roomMembers after a restart until they recover" },
  async () => {
    const BOOK = 2705;
    const ishmael = await support.reader(browser, baseUrl, BOOK, "Ishmael");
    const { page } = ishmael;
    const queequeg = await support.bareClient(browser, baseUrl, { bookId: BOOK, userId: "q", username: "Queequeg" });
    await waitForText(page, "#member-list li", "Queequeg");
    await page.evaluate(() => window.socket.io.reconnection(false));
    await queequeg.page.evaluate(() => window.bare.io.reconnection(false)); // Queequeg stays away
    await server.restart();
    await page.waitForFunction(() => !window.socket.connected, null, { timeout: WAIT_MS });
    await page.evaluate(() => {
      window.socket.io.reconnection(true);
      window.socket.connect();
    });
    await page.waitForFunction(() => window.socket.connected, null, { timeout: WAIT_MS });
    assert.equal(await page.evaluate(() => window.socket.recovered), true);
    const answer = await page.evaluate((bookId) => window.socket.timeout(5000).emitWithAck("roomMembers", { bookId }), BOOK);
    assert.deepEqual(answer.members.map((m) => m.username).sort(), ["Ishmael", "Queequeg"]);
    await ishmael.context.close();
    await queequeg.close();
  },
);
