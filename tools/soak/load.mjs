// Mixed soak load for readrealm-chat (issue 4, item 6): a bounded population of
// socket.io-client 4.8 readers that connect (polling then upgrade, or WebSocket only), join
// and leave book rooms, post with acks, read, and leave again: cleanly (disconnect) or by
// dropping the TCP connection. Each reader that goes is replaced, so the population stays at
// CLIENTS for the whole run. Only connects to the one server URL it is given (loopback).
//
// usage: node load.mjs URL SECONDS [CLIENTS] [BOOKS] [WRITERS]
// WRITERS: the fraction of readers that post (default 0.5; 0 for a run without writes).
// Prints a stats line every minute and a JSON summary at the end; exits 1 if the server
// answered posts with errors other than rate_limited, or acks went missing.

import { io } from "socket.io-client";

const [url, secondsArg, clientsArg, booksArg, writersArg] = process.argv.slice(2);
if (!url || !secondsArg) {
  console.error("usage: node load.mjs URL SECONDS [CLIENTS] [BOOKS] [WRITERS]");
  process.exit(2);
}
const host = new URL(url).hostname;
if (!["127.0.0.1", "localhost", "::1", "[::1]"].includes(host)) {
  console.error(`refusing to load ${url}: the soak only targets loopback`);
  process.exit(2);
}
const SECONDS = Number(secondsArg);
const CLIENTS = Number(clientsArg ?? 300);
const BOOKS = Number(booksArg ?? 20);
const WRITERS = Number(writersArg ?? 0.5);
const ACK_TIMEOUT_MS = 10_000;
const endAt = Date.now() + SECONDS * 1000;

const stats = {
  connects: 0,
  connectErrors: 0,
  cleanLeaves: 0,
  drops: 0,
  joins: 0,
  leaves: 0,
  posts: 0,
  acksOk: 0,
  rateLimited: 0,
  otherErrors: 0,
  ackTimeouts: 0,
  newMessages: 0,
  exceptions: 0,
  unexpectedDisconnects: 0,
};
const errorSamples = [];

const rand = (n) => Math.floor(Math.random() * n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let serial = 0;

/** One reader's life: connect, a few rounds of joining/posting/leaving, then go. */
async function life() {
  const id = ++serial;
  const user = `soak-${id}`;
  const wsOnly = Math.random() < 0.3;
  const socket = io(url, {
    transports: wsOnly ? ["websocket"] : ["polling", "websocket"],
    reconnection: false,
    timeout: 10_000,
    forceNew: true,
  });
  let leaving = false;
  socket.on("newMessage", () => stats.newMessages++);
  socket.on("exception", (e) => {
    stats.exceptions++;
    if (errorSamples.length < 20) errorSamples.push({ exception: e });
  });
  socket.on("disconnect", (reason) => {
    if (!leaving) {
      stats.unexpectedDisconnects++;
      if (errorSamples.length < 20) errorSamples.push({ disconnect: reason, user });
    }
  });
  try {
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    });
  } catch (e) {
    stats.connectErrors++;
    if (errorSamples.length < 20) errorSamples.push({ connectError: String(e) });
    socket.close();
    await sleep(1000);
    return;
  }
  stats.connects++;
  const joined = new Set();
  const lifetime = 20_000 + rand(100_000);
  const goAt = Math.min(Date.now() + lifetime, endAt);
  const writer = Math.random() < WRITERS;
  while (Date.now() < goAt && socket.connected) {
    const roll = Math.random();
    if (joined.size === 0 || (roll < 0.1 && joined.size < 3)) {
      const bookId = 1 + rand(BOOKS);
      const ack = await emit(socket, "joinRoom", {
        bookId: Math.random() < 0.5 ? bookId : String(bookId),
        userId: user,
        username: user,
      });
      if (ack?.ok) {
        joined.add(bookId);
        stats.joins++;
      }
    } else if (roll < 0.15 && joined.size > 0) {
      const bookId = [...joined][rand(joined.size)];
      const ack = await emit(socket, "leaveRoom", { bookId, username: user });
      if (ack?.ok) {
        joined.delete(bookId);
        stats.leaves++;
      }
    } else if (writer) {
      const bookId = [...joined][rand(joined.size)];
      stats.posts++;
      await emit(socket, "chatMessage", {
        bookId,
        userId: user,
        username: user,
        content: `message ${stats.posts} from ${user} ${"·".repeat(rand(200))}`,
      });
    }
    await sleep(1000 + rand(4000));
  }
  leaving = true;
  if (Date.now() < endAt && Math.random() < 0.4) {
    // Drop: the TCP connection goes away without a close packet or close frame.
    const transport = socket.io.engine?.transport;
    if (transport?.name === "websocket" && transport.ws?._socket) {
      transport.ws._socket.destroy();
      stats.drops++;
      return;
    }
  }
  socket.disconnect();
  stats.cleanLeaves++;
}

async function emit(socket, event, payload) {
  try {
    const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload);
    if (ack?.ok) {
      if (event === "chatMessage") stats.acksOk++;
    } else if (ack?.error?.code === "rate_limited") {
      stats.rateLimited++;
    } else {
      stats.otherErrors++;
      if (errorSamples.length < 20) errorSamples.push({ event, ack });
    }
    return ack;
  } catch (e) {
    if (socket.connected) {
      stats.ackTimeouts++;
      if (errorSamples.length < 20) errorSamples.push({ event, ackTimeout: String(e) });
    }
    return undefined;
  }
}

/** Keep one reader alive in this slot until the end, replacing each that goes. */
async function slot(index) {
  // Stagger the start over the first 20 seconds.
  await sleep(rand(Math.min(20_000, SECONDS * 500)));
  while (Date.now() < endAt) {
    await life();
  }
}

const started = Date.now();
const ticker = setInterval(() => {
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  console.log(`[${minutes} min] ${JSON.stringify(stats)}`);
}, 60_000);
await Promise.all(Array.from({ length: CLIENTS }, (_, i) => slot(i)));
clearInterval(ticker);
console.log(JSON.stringify({ summary: stats, errorSamples }, null, 2));
const failed = stats.otherErrors > 0 || stats.ackTimeouts > 0 || stats.connects === 0;
process.exit(failed ? 1 : 0);
