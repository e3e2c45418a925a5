// The reading-room page (/) in a real browser: Debian's chromium driven by playwright-core
// (no browser download). The release server runs on a temporary data directory; two pages in
// the same book chat with each other, a third joins and sees the history, a page closes and
// the others see it leave. A screenshot is kept in tests/browser/artifacts/ (path printed).
// The server and browser helpers are in support.mjs.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as support from "./support.mjs";
import { say, messageTexts, waitForText } from "./support.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const BOOK = "2701";
const ARTIFACT = path.join(here, "artifacts", "reading-room.png");

let server;
let baseUrl;
let browser;

before(async () => {
  server = await support.startServer();
  baseUrl = server.baseUrl;
  browser = await support.launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

/** A phone-sized page that has joined BOOK as `name`. */
function reader(name) {
  return support.reader(browser, baseUrl, BOOK, name);
}

test("the page and its scripts are served with the right headers", async () => {
  const page = await fetch(baseUrl + "/");
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type"), /^text\/html/);
  assert.match(page.headers.get("content-security-policy"), /script-src 'self'/);
  const bundle = await fetch(baseUrl + "/socket.io/socket.io.min.js");
  assert.equal(bundle.status, 200, "run npm ci in static/ (tools/setup.sh)");
  assert.match(bundle.headers.get("content-type"), /javascript/);
  assert.match(bundle.headers.get("cache-control"), /max-age=/);
  const head = await fetch(baseUrl + "/health", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
  const health = await (await fetch(baseUrl + "/health")).json();
  assert.equal(health.status, "ok");
});

test("two readers chat, a third sees the history, a leaver is seen leaving", async () => {
  const ishmael = await reader("Ishmael");
  const queequeg = await reader("Queequeg");
  await waitForText(ishmael.page, "#messages .event", "Queequeg joined");

  await say(ishmael.page, "Call me Ishmael.");
  await waitForText(queequeg.page, "#messages .msg .text", "Call me Ishmael.");
  // Markup is shown as text, never interpreted.
  const markup = "<img src=x onerror=alert(1)> <b>not bold</b>";
  await say(queequeg.page, markup);
  await waitForText(ishmael.page, "#messages .msg .text", markup);
  assert.equal(await ishmael.page.$$eval("#messages img, #messages b", (n) => n.length), 0);

  const starbuck = await reader("Starbuck");
  await waitForText(starbuck.page, "#messages .msg .text", markup);
  assert.deepEqual(await messageTexts(starbuck.page), ["Call me Ishmael.", markup], "history, oldest first");
  await waitForText(ishmael.page, "#messages .event", "Starbuck joined");
  await waitForText(queequeg.page, "#messages .event", "Starbuck joined");

  await say(starbuck.page, "Whale ahoy!");
  await waitForText(ishmael.page, "#messages .msg .text", "Whale ahoy!");
  await waitForText(queequeg.page, "#messages .msg .text", "Whale ahoy!");

  await queequeg.context.close();
  await waitForText(ishmael.page, "#messages .event", "Queequeg left");
  await waitForText(starbuck.page, "#messages .event", "Queequeg left");

  // Each message exactly once, in order, on the pages that stayed.
  for (const { page } of [ishmael, starbuck]) {
    assert.deepEqual(await messageTexts(page), ["Call me Ishmael.", markup, "Whale ahoy!"]);
  }
  assert.equal(await ishmael.page.$$eval("#messages .msg.mine", (n) => n.length), 1);

  await fs.mkdir(path.dirname(ARTIFACT), { recursive: true });
  await ishmael.page.screenshot({ path: ARTIFACT, fullPage: true });
  console.log(`screenshot: ${ARTIFACT}`);

  for (const r of [ishmael, starbuck]) {
    assert.deepEqual(r.problems, [], "no page errors");
    await r.context.close();
  }
});
