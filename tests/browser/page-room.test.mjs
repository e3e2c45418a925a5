// The reading-room page's history and member list, in chromium (support.mjs): "Load older
// messages" pages back through a room of a few hundred messages down to its first, each message
// once and in order; the member list follows readers joining and leaving, one entry per reader.
// The messages are posted by another socket.io-client, so the expected texts are the test's own.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as support from "./support.mjs";
import { loadOlder, memberNames, messageTexts, waitForText, WAIT_MS } from "./support.mjs";

let server;
let baseUrl;
let browser;

before(async () => {
  // Seeding posts a few hundred messages from one connection: lift the per-connection rate.
  server = await support.startServer(["--message-rate", "10000", "--message-burst", "10000"]);
  baseUrl = server.baseUrl;
  browser = await support.launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

const line = (i) => `line ${String(i).padStart(3, "0")}`;

test("load older pages back to the room's first message, each message once, in order", async () => {
  const BOOK = 1851;
  const TOTAL = 260;
  const seeder = await support.bareClient(browser, baseUrl, { bookId: BOOK, userId: "seed", username: "Melville" });
  const texts = Array.from({ length: TOTAL }, (_, i) => line(i + 1));
  const acked = await seeder.post(texts);
  assert.equal(acked.length, TOTAL);

  const reader = await support.reader(browser, baseUrl, BOOK, "Ishmael");
  const { page } = reader;
  await waitForText(page, "#messages .msg .text", line(TOTAL));
  assert.deepEqual(await messageTexts(page), texts.slice(-50), "the 50 newest, oldest first");
  assert.equal(await page.isVisible("#older"), true, "a full first page may have older messages");

  // A reader scrolls up to the button; the messages they were reading stay where they are on
  // screen while the older page grows above them.
  await page.$eval("#scroller", (s) => {
    s.scrollTop = 0;
  });
  const where = () =>
    page.evaluate((id) => {
      const li = document.querySelector(`#messages .msg[data-id="${id}"]`);
      return li.getBoundingClientRect().top - document.getElementById("scroller").getBoundingClientRect().top;
    }, acked[TOTAL - 50]._id);
  const before = await where();
  await loadOlder(page);
  assert.deepEqual(await messageTexts(page), texts.slice(-100));
  assert.ok(Math.abs((await where()) - before) < 2, "loading older messages keeps the view where it was");

  // A message posted meanwhile goes at the end, once.
  await seeder.post(["late"]);
  await waitForText(page, "#messages .msg .text", "late");

  let clicks = 1;
  while (await page.isVisible("#older")) {
    assert.ok(++clicks <= 10, "the first message is reached in a bounded number of pages");
    await loadOlder(page);
  }
  assert.equal(clicks, Math.ceil((TOTAL - 50) / 50), "50 a page after the 50 of previousMessages");
  assert.deepEqual(await messageTexts(page), [...texts, "late"]);
  const ids = await page.$$eval("#messages .msg", (n) => n.map((li) => li.dataset.id));
  assert.equal(new Set(ids).size, ids.length, "no message twice");
  assert.deepEqual(ids.slice(0, TOTAL), acked.map((m) => m._id), "the acked messages, in the order they were posted");

  assert.deepEqual(reader.problems, [], "no page errors");
  await reader.context.close();
  await seeder.close();
});

test("a room of fewer than 50 messages offers no older ones", async () => {
  const BOOK = 1852;
  const seeder = await support.bareClient(browser, baseUrl, { bookId: BOOK, userId: "seed", username: "Melville" });
  await seeder.post([line(1), line(2)]);
  const reader = await support.reader(browser, baseUrl, BOOK, "Ishmael");
  await waitForText(reader.page, "#messages .msg .text", line(2));
  assert.equal(await reader.page.isVisible("#older"), false);
  assert.deepEqual(await messageTexts(reader.page), [line(1), line(2)]);
  await reader.context.close();
  await seeder.close();
});

/** Wait until the page's member list reads `names` (in any order) with `count` in the summary. */
async function waitForMembers(page, names, count) {
  await page
    .waitForFunction(
      ([want, n]) => {
        const got = [...document.querySelectorAll("#member-list li")].map((li) => li.textContent).sort();
        return (
          document.getElementById("member-count").textContent === String(n) &&
          JSON.stringify(got) === JSON.stringify(want.slice().sort())
        );
      },
      [names, count],
      { timeout: WAIT_MS },
    )
    .catch(async (e) => {
      const got = await memberNames(page);
      const shown = await page.textContent("#member-count");
      throw new Error(`members: want ${JSON.stringify(names)} (${count}), got ${JSON.stringify(got)} (${shown}): ${e.message}`);
    });
}

test("the member list follows readers joining and leaving, one entry per reader", async () => {
  const BOOK = 1;
  const ahab = await support.reader(browser, baseUrl, BOOK, "Ahab");
  await waitForMembers(ahab.page, ["Ahab (you)"], 1);

  const starbuck = await support.reader(browser, baseUrl, BOOK, "Starbuck");
  await waitForMembers(ahab.page, ["Ahab (you)", "Starbuck"], 2);
  await waitForMembers(starbuck.page, ["Ahab", "Starbuck (you)"], 2);
  assert.equal(await starbuck.page.textContent("#member-list li:first-child"), "Starbuck (you)", "the joiner first");

  // Starbuck's second connection (same userId) is the same reader: nobody's list changes.
  const starbuckId = await starbuck.page.evaluate(() => sessionStorage.getItem("readrealm.userId"));
  const second = await support.bareClient(browser, baseUrl, { bookId: BOOK, userId: starbuckId, username: "Starbuck" });
  // Room events arrive in one order: once this message is seen, a userJoined would have been.
  await second.post(["from the second tab"]);
  await waitForText(ahab.page, "#messages .msg .text", "from the second tab");
  await waitForMembers(ahab.page, ["Ahab (you)", "Starbuck"], 2);
  await second.close();

  // A third reader comes and goes by closing the page.
  const flask = await support.reader(browser, baseUrl, BOOK, "Flask");
  await waitForMembers(ahab.page, ["Ahab (you)", "Flask", "Starbuck"], 3);
  await waitForMembers(starbuck.page, ["Ahab", "Flask", "Starbuck (you)"], 3);
  await flask.context.close();
  await waitForMembers(ahab.page, ["Ahab (you)", "Starbuck"], 2);

  // Starbuck leaves with the button; the page's own list is emptied.
  await starbuck.page.click("#leave");
  await waitForMembers(ahab.page, ["Ahab (you)"], 1);
  await waitForText(ahab.page, "#messages .event", "Starbuck left");
  // Starbuck's page empties its list when its leaveRoom is answered; that answer and Ahab's
  // userLeft go out together, so either may arrive first.
  await waitForMembers(starbuck.page, [], 0);

  for (const r of [ahab, starbuck]) {
    assert.deepEqual(r.problems, [], "no page errors");
    await r.context.close();
  }
});
