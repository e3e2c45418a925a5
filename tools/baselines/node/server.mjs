// The ReadRealm book chat contract (docs/API.md) on socket.io 4.8 (Node), with the
// history in memory: the baseline that readrealm-chat is compared with (tools/compare, loadgen).
//
// It follows readrealm-chat's handlers (src/chat/) step by step, with the same checks in the same
// order and the same error texts, so that the project's own chat tests (tests/js/chat.test.mjs)
// pass against it. socket.io's defaults apply except where docs/API.md says otherwise.
//
// Usage: node server.mjs --listen 127.0.0.1:3000 [--max-rooms N] [--message-rate R]
//        [--message-burst B] [--max-content-length C] [--max-payload BYTES]
//        [--ping-interval MS] [--ping-timeout MS]
// Prints `listening on ADDR` on stdout once it accepts connections.

import http from "node:http";
import { Server } from "socket.io";

// ---- settings -------------------------------------------------------------------------------

const settings = {
  listen: "0.0.0.0:3000",
  maxRooms: 100,
  messageRate: 10,
  messageBurst: 20,
  maxContentLength: 4000,
  maxPayload: 1_000_000, // socket.io's own default maxHttpBufferSize
  pingInterval: 25_000, // socket.io's default
  pingTimeout: 20_000, // socket.io's default
};

const FLAGS = {
  "--listen": ["listen", String],
  "--max-rooms": ["maxRooms", positiveInt],
  "--message-rate": ["messageRate", positiveNumber],
  "--message-burst": ["messageBurst", positiveNumber],
  "--max-content-length": ["maxContentLength", positiveInt],
  "--max-payload": ["maxPayload", positiveInt],
  "--ping-interval": ["pingInterval", positiveInt],
  "--ping-timeout": ["pingTimeout", positiveInt],
};

function positiveInt(s) {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`not a positive whole number: ${s}`);
  return n;
}

function positiveNumber(s) {
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`not a positive number: ${s}`);
  return n;
}

function parseArgs(argv) {
  for (let i = 0; i < argv.length; i++) {
    let [flag, value] = argv[i].split(/=(.*)/s);
    const spec = FLAGS[flag];
    if (!spec) throw new Error(`unknown flag ${flag}`);
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new Error(`${flag} needs a value`);
    }
    try {
      settings[spec[0]] = spec[1](value);
    } catch (e) {
      throw new Error(`${flag}: ${e.message}`);
    }
  }
}

try {
  parseArgs(process.argv.slice(2));
} catch (e) {
  console.error(`readrealm-baseline-node: ${e.message}`);
  process.exit(2);
}

// ---- validation (as src/chat/validate.rs) ---------------------------------------------------

const MAX_BOOK_ID = 9007199254740991n;
const MAX_USER_ID_CHARS = 128;
const MAX_USERNAME_CHARS = 64;

class ChatError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}
const invalid = (message) => new ChatError("invalid_payload", message);

// Rust's `str::trim`: the Unicode White_Space property (JS's trim differs on U+0085 and U+FEFF).
const TRIM = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;
const trim = (s) => s.replace(TRIM, "");
/** Characters as Unicode scalar values (code points), not UTF-16 units. */
function chars(s) {
  let n = 0;
  for (const _ of s) n++;
  return n;
}
// Rust's `char::is_control`: general category Cc.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROL_BUT_NL_TAB = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

function object(payload) {
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    throw invalid("payload must be an object");
  }
  return payload;
}

function bookId(v) {
  const RULE = "bookId must be a whole number from 1 to 9007199254740991";
  if (v === undefined) throw invalid("bookId is required");
  if (typeof v === "number") {
    if (Number.isInteger(v) && v >= 1 && v <= Number.MAX_SAFE_INTEGER) return v;
    throw invalid(RULE);
  }
  if (typeof v === "string" && v.length > 0 && v.length <= 20 && /^[0-9]+$/.test(v)) {
    const n = BigInt(v);
    if (n >= 1n && n <= MAX_BOOK_ID) return Number(n);
  }
  throw invalid(RULE);
}

function userId(v) {
  let id;
  if (typeof v === "string") id = v;
  else if (typeof v === "number") id = String(v);
  else if (v === undefined) throw invalid("userId is required");
  else throw invalid("userId must be a string");
  const n = chars(id);
  if (n === 0 || n > MAX_USER_ID_CHARS) throw invalid("userId must be 1 to 128 characters");
  return id;
}

function username(v) {
  if (v === undefined) throw invalid("username is required");
  if (typeof v !== "string") throw invalid("username must be a string");
  const name = trim(v);
  const n = chars(name);
  if (n === 0 || n > MAX_USERNAME_CHARS) throw invalid("username must be 1 to 64 characters after trimming");
  if (CONTROL.test(name)) throw invalid("username must not contain control characters");
  return name;
}

function content(v) {
  const max = settings.maxContentLength;
  if (v === undefined) throw invalid("content is required");
  if (typeof v !== "string") throw invalid("content must be a string");
  const text = trim(v);
  const n = chars(text);
  if (n === 0 || n > max) throw invalid(`content must be 1 to ${max} characters after trimming`);
  if (CONTROL_BUT_NL_TAB.test(text)) {
    throw invalid("content must not contain control characters other than newline and tab");
  }
  return text;
}

// ---- history and ids ------------------------------------------------------------------------

/** Kept per room: the newest HISTORY_LEN messages (all that the contract ever reads back). */
const HISTORY_LEN = 50;
/** bookId → Message[] oldest first, at most HISTORY_LEN. */
const history = new Map();

// `_id`: 6 bytes of milliseconds (never going backwards) and 6 bytes of a counter, as hex.
// One process numbers every message, so ids increase in the order messages are stored.
let lastMs = 0;
let counter = Math.floor(Math.random() * 2 ** 32);
function nextId(ms) {
  lastMs = Math.max(lastMs, ms);
  counter = (counter + 1) % 2 ** 48;
  return lastMs.toString(16).padStart(12, "0") + counter.toString(16).padStart(12, "0");
}

function store(request) {
  const now = Date.now();
  const at = new Date(now).toISOString();
  const message = {
    _id: nextId(now),
    bookId: request.bookId,
    userId: request.userId,
    username: request.username,
    content: request.content,
    createdAt: at,
    updatedAt: at,
  };
  let list = history.get(request.bookId);
  if (!list) history.set(request.bookId, (list = []));
  list.push(message);
  if (list.length > HISTORY_LEN) list.shift();
  return message;
}

/** The room's newest messages, newest first. */
function newest(bookId) {
  const list = history.get(bookId);
  return list ? [...list].reverse() : [];
}

const roomName = (id) => `book_${id}`;
const presence = (name) => ({ username: name, timestamp: new Date().toISOString() });

// ---- the server -----------------------------------------------------------------------------

const httpServer = http.createServer();
const io = new Server(httpServer, {
  maxHttpBufferSize: settings.maxPayload,
  pingInterval: settings.pingInterval,
  pingTimeout: settings.pingTimeout,
});

io.on("connection", (socket) => {
  /** What the chat keeps per connection (as `Reader` in src/chat/mod.rs). */
  const reader = {
    userId: undefined,
    rooms: new Map(), // bookId → username given at join
    tokens: Infinity,
    updated: undefined,
  };

  function checkIdentity(id) {
    if (reader.userId !== undefined && reader.userId !== id) {
      throw new ChatError("identity_mismatch", "userId differs from the one this connection joined with");
    }
  }

  /** Token bucket: starts full, refills at the rate, never above the burst. */
  function takeToken() {
    const now = performance.now();
    const elapsed = reader.updated === undefined ? 0 : (now - reader.updated) / 1000;
    reader.tokens = Math.min(Math.min(reader.tokens, settings.messageBurst) + elapsed * settings.messageRate, settings.messageBurst);
    reader.updated = now;
    if (reader.tokens >= 1) {
      reader.tokens -= 1;
      return true;
    }
    return false;
  }

  function join(payload) {
    const fields = object(payload);
    const request = { bookId: bookId(fields.bookId), userId: userId(fields.userId), username: username(fields.username) };
    checkIdentity(request.userId);
    const alreadyIn = reader.rooms.has(request.bookId);
    if (!alreadyIn && reader.rooms.size >= settings.maxRooms) {
      throw new ChatError("too_many_rooms", `a connection may be in at most ${settings.maxRooms} rooms`);
    }
    const previous = newest(request.bookId);
    if (reader.userId === undefined) reader.userId = request.userId;
    const room = roomName(request.bookId);
    if (!alreadyIn) {
      socket.join(room);
      reader.rooms.set(request.bookId, request.username);
    }
    socket.emit("previousMessages", previous);
    if (!alreadyIn) socket.to(room).emit("userJoined", presence(request.username));
    return { ok: true, room };
  }

  function post(payload) {
    const fields = object(payload);
    const request = {
      bookId: bookId(fields.bookId),
      userId: userId(fields.userId),
      username: username(fields.username),
      content: content(fields.content),
    };
    checkIdentity(request.userId);
    if (!reader.rooms.has(request.bookId)) {
      throw new ChatError("not_in_room", `join book ${request.bookId} before posting to it`);
    }
    if (!takeToken()) {
      throw new ChatError(
        "rate_limited",
        `at most ${settings.messageRate} messages per second, bursts of ${settings.messageBurst}`,
      );
    }
    const message = store(request);
    io.to(roomName(request.bookId)).emit("newMessage", message);
    return { ok: true, message };
  }

  function leave(payload) {
    const fields = object(payload);
    const id = fields.userId === undefined || fields.userId === null ? undefined : userId(fields.userId);
    const request = { bookId: bookId(fields.bookId), username: username(fields.username) };
    if (id !== undefined) checkIdentity(id);
    if (reader.rooms.delete(request.bookId)) {
      const room = roomName(request.bookId);
      socket.leave(room);
      socket.to(room).emit("userLeft", presence(request.username));
    }
    return { ok: true };
  }

  /** One request: the answer goes through the ack if there is one, else errors as `exception`. */
  function on(event, handle) {
    socket.on(event, (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
      let answer;
      try {
        answer = handle(args[0]);
      } catch (e) {
        if (!(e instanceof ChatError)) throw e;
        if (ack) ack({ ok: false, error: { code: e.code, message: e.message } });
        else socket.emit("exception", { status: "error", event, code: e.code, message: e.message });
        return;
      }
      if (ack) ack(answer);
    });
  }

  on("joinRoom", join);
  on("chatMessage", post);
  on("leaveRoom", leave);

  socket.on("disconnect", () => {
    // socket.io has already taken the socket out of its rooms: everyone left there is told.
    for (const [id, name] of reader.rooms) io.to(roomName(id)).emit("userLeft", presence(name));
    reader.rooms.clear();
  });
});

const m = /^(.*):(\d+)$/.exec(settings.listen);
if (!m) {
  console.error(`readrealm-baseline-node: --listen wants HOST:PORT, got ${settings.listen}`);
  process.exit(2);
}
const host = m[1].replace(/^\[(.*)\]$/, "$1");
httpServer.on("error", (e) => {
  console.error(`readrealm-baseline-node: ${e.message}`);
  process.exit(1);
});
httpServer.listen(Number(m[2]), host, () => {
  const a = httpServer.address();
  const shown = a.family === "IPv6" ? `[${a.address}]` : a.address;
  process.stdout.write(`listening on ${shown}:${a.port}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}
