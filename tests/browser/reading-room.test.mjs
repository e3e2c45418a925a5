// The reading-room page (/) in a real browser: Debian's chromium driven by playwright-core
// (no browser download). The release server runs on a temporary data directory; two pages in
// the same book chat with each other, a third joins and sees the history, a page closes and
// the others see it leave. A screenshot is kept in tests/browser/artifacts/ (path printed).
//
// CHROMIUM (default /usr/bin/chromium) and READREALM_BIN_DIR (default target/release) may be
// set. Every wait is bounded.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..", "..");
const WAIT_MS = 10_000;
const BOOK = "2701";
const ARTIFACT = path.join(here, "artifacts", "reading-room.png");

let server;
let baseUrl;
let dataDir;
let browser;

/** Start the release binary on 127.0.0.1:0; resolves with its address once it listens. */
function startServer(dir) {
  const bin = path.join(process.env.READREALM_BIN_DIR || path.join(repoRoot, "target", "release"), "readrealm-chat");
  const child = spawn(
    bin,
    ["--listen", "127.0.0.1:0", "--data-dir", dir, "--shards", "2", "--log", "debug"],
    { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  const address = new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${stderr}`)), WAIT_MS);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = out.match(/listening on (\S+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.on("exit", (code) => reject(new Error(`server exited with ${code}:\n${stderr}`)));
  });
  return { child, address, stderr: () => stderr };
}

before(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "readrealm-browser-"));
  server = startServer(dataDir);
  baseUrl = `http://${await server.address}`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    timeout: 30_000,
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  if (server) {
    server.child.kill("SIGTERM");
    await new Promise((resolve) => {
      const timer = setTimeout(() => {
        server.child.kill("SIGKILL");
        resolve();
      }, 5000);
      server.child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

/** A phone-sized page that has joined BOOK as `name`. */
async function reader(name) {
  const context = await browser.newContext({ viewport: { width: 390, height: 740 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
  await page.goto(baseUrl + "/", { timeout: WAIT_MS });
  await page.fill("#book", BOOK);
  await page.fill("#name", name);
  await page.press("#name", "Enter");
  await page.waitForSelector("#room:not([hidden])", { timeout: WAIT_MS });
  return { page, context, problems };
}

/** Type a message and send it with Enter. */
async function say(page, text) {
  await page.fill("#content", text);
  await page.press("#content", "Enter");
}

/** The texts of the messages on the page, oldest first. */
function messageTexts(page) {
  return page.$$eval("#messages .msg .text", (nodes) => nodes.map((n) => n.textContent));
}

async function waitForText(page, selector, text) {
  await page.waitForFunction(
    ([sel, want]) => [...document.querySelectorAll(sel)].some((n) => n.textContent === want),
    [selector, text],
    { timeout: WAIT_MS },
  );
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
