// What the browser tests share: the release server on a temporary data directory, Debian's
// chromium driven by playwright-core (no browser download), a reader that joins through the
// page's form, and a bare socket.io-client (the bundle the server serves, run in a page of its
// own) that joins and posts without the page's script.
//
// CHROMIUM (default /usr/bin/chromium) and READREALM_BIN_DIR (default target/release) may be
// set. Every wait is bounded.

import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "..", "..");
export const WAIT_MS = 10_000;

/** Run the release binary on `listen` with `dataDir`; resolves once it listens. */
async function spawnServer(listen, dataDir, extraArgs) {
  const bin = path.join(process.env.READREALM_BIN_DIR || path.join(repoRoot, "target", "release"), "readrealm-chat");
  const child = spawn(
    bin,
    ["--listen", listen, "--data-dir", dataDir, "--shards", "2", "--log", "debug", ...extraArgs],
    { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const address = await new Promise((resolve, reject) => {
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
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${stderr}`));
    });
  });
  return { child, exited, address, stderr: () => stderr };
}

/** SIGTERM (SIGKILL after 5 s); resolves with how it exited. */
async function stopServer(run) {
  if (run.child.exitCode !== null || run.child.signalCode !== null) return run.exited;
  run.child.kill("SIGTERM");
  const timer = setTimeout(() => run.child.kill("SIGKILL"), 5000);
  const how = await run.exited;
  clearTimeout(timer);
  return how;
}

/**
 * Start the release binary on 127.0.0.1:0 with a fresh data directory and `extraArgs`;
 * resolves with `{ baseUrl, restart(), stop() }` once it listens. `restart()` stops it with
 * SIGTERM and starts it again on the same address and data directory.
 */
export async function startServer(extraArgs = []) {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "readrealm-browser-"));
  let run = await spawnServer("127.0.0.1:0", dataDir, extraArgs);
  const address = run.address;
  return {
    baseUrl: `http://${address}`,
    stderr: () => run.stderr(),
    async restart() {
      const how = await stopServer(run);
      if (how.code !== 0) throw new Error(`server stopped with ${JSON.stringify(how)}:\n${run.stderr()}`);
      run = await spawnServer(address, dataDir, extraArgs);
    },
    async stop() {
      await stopServer(run);
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    timeout: 30_000,
  });
}

/** A phone-sized page of its own (own storage, so its own userId). */
async function newPage(browser, baseUrl) {
  const context = await browser.newContext({ viewport: { width: 390, height: 740 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
  await page.goto(baseUrl + "/", { timeout: WAIT_MS });
  return { page, context, problems };
}

/** A reading-room page that has joined `book` as `name` through the form. */
export async function reader(browser, baseUrl, book, name) {
  const r = await newPage(browser, baseUrl);
  await r.page.fill("#book", String(book));
  await r.page.fill("#name", name);
  await r.page.press("#name", "Enter");
  await r.page.waitForSelector("#room:not([hidden])", { timeout: WAIT_MS });
  return r;
}

/**
 * Another client, not the page's script: socket.io-client (the served bundle) in a page of its
 * own, joined to `bookId` as `userId`/`username`. `post(texts)` sends each text in turn, each
 * after the previous one's ack, and resolves with the acked messages; `close()` disconnects.
 */
export async function bareClient(browser, baseUrl, { bookId, userId, username }) {
  const r = await newPage(browser, baseUrl);
  const joined = await r.page.evaluate(
    async ({ bookId, userId, username, wait }) => {
      // The page's own script has its socket; this one is separate (forceNew).
      window.bare = io({ forceNew: true, transports: ["websocket"] });
      return window.bare.timeout(wait).emitWithAck("joinRoom", { bookId, userId, username });
    },
    { bookId, userId, username, wait: WAIT_MS },
  );
  if (!joined.ok) throw new Error(`bare client could not join: ${JSON.stringify(joined)}`);
  return {
    ...r,
    async post(texts) {
      return r.page.evaluate(
        async ({ bookId, userId, username, texts, wait }) => {
          const acked = [];
          for (const content of texts) {
            const ack = await window.bare
              .timeout(wait)
              .emitWithAck("chatMessage", { bookId, userId, username, content });
            if (!ack.ok) throw new Error(`${content}: ${ack.error.code} ${ack.error.message}`);
            acked.push(ack.message);
          }
          return acked;
        },
        { bookId, userId, username, texts, wait: WAIT_MS },
      );
    },
    /** A clean Socket.IO disconnect (not a drop the server would keep for recovery), then away. */
    async close() {
      await r.page.evaluate(() => window.bare.disconnect()).catch(() => {});
      await r.context.close();
    },
  };
}

/** Type a message and send it with Enter. */
export async function say(page, text) {
  await page.fill("#content", text);
  await page.press("#content", "Enter");
}

/** The texts of the messages on the page, top to bottom. */
export function messageTexts(page) {
  return page.$$eval("#messages .msg .text", (nodes) => nodes.map((n) => n.textContent));
}

/** The entries of the page's member list, top to bottom. */
export function memberNames(page) {
  return page.$$eval("#member-list li", (nodes) => nodes.map((n) => n.textContent));
}

export async function waitForText(page, selector, text) {
  await page.waitForFunction(
    ([sel, want]) => [...document.querySelectorAll(sel)].some((n) => n.textContent === want),
    [selector, text],
    { timeout: WAIT_MS },
  );
}

/** Click "Load older messages" once and wait until the answer is on the page. */
export async function loadOlder(page) {
  const before = await page.$$eval("#messages .msg", (n) => n.length);
  await page.click("#older");
  await page.waitForFunction(
    (count) => {
      const button = document.getElementById("older");
      return !button.disabled && (button.hidden || document.querySelectorAll("#messages .msg").length > count);
    },
    before,
    { timeout: WAIT_MS },
  );
}
