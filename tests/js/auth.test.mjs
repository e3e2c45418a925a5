// Token authentication (docs/API.md, "Token authentication") checked with socket.io-client 4.8
// against `readrealm-chat --shards 2` on all three client configurations (polling then websocket
// upgrade, websocket only, polling only). Keys are made here with node's crypto and tokens are
// signed with `jose` (pinned in package.json), never by the server under test.
//
// Servers (each on its own fresh temporary data dir, 2 shards):
// - "hmac": --auth-jwt-secret-file (a random secret plus a trailing newline), with
//   --auth-jwt-issuer and --auth-jwt-audience: refusals, identity, `name`, HS256/384/512;
// - "rsa", "p256", "p384", "ed25519": --auth-jwt-public-key-file with a key of that type: each
//   algorithm the type serves, and the ones it must refuse (algorithm confusion included);
// - "expiry": a secret and --auth-jwt-leeway 0, for closing a connection when its token expires.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { SignJWT, base64url } from "jose";
import { io } from "socket.io-client";

import {
  CONFIGS,
  ChatClients,
  WAIT_MS,
  assertError,
  assertPresence,
  join,
  leave,
  newBook,
  post,
  skipUnlessOwnServer,
  startChatServer,
  waitUntil,
  withTimeout,
} from "./chat-helpers.mjs";
import { ready } from "./helpers.mjs";

const T = { timeout: 60_000 };
const ISSUER = "https://api.readrealm.test";
const AUDIENCE = "readrealm-chat";
const now = () => Math.floor(Date.now() / 1000);

let tmpDir;
async function writeKeyFile(name, content) {
  tmpDir ??= await fs.mkdtemp(path.join(os.tmpdir(), "readrealm-auth-test-"));
  const file = path.join(tmpDir, name);
  await fs.writeFile(file, content);
  return file;
}

/** A signed token: `claims` over the defaults (sub, iss, aud, exp in 10 minutes). */
function sign(key, alg, claims = {}, { defaults = true } = {}) {
  const body = defaults ? { sub: "reader-1", iss: ISSUER, aud: AUDIENCE, exp: now() + 600, ...claims } : claims;
  for (const [k, v] of Object.entries(body)) if (v === undefined) delete body[k];
  return new SignJWT(body).setProtectedHeader({ alg, typ: "JWT" }).sign(key);
}

/** An unsigned token with header `{ alg }` (e.g. `none`), as an attacker would write it. */
function unsigned(alg, claims) {
  const enc = (v) => base64url.encode(JSON.stringify(v));
  return `${enc({ alg, typ: "JWT" })}.${enc(claims)}.`;
}

/**
 * Connects one client with `auth` and resolves with `{ connected: true, socket }` or
 * `{ connected: false, err }` from its `connect_error`.
 */
async function attempt(clients, config, auth) {
  const socket = clients.create(config, auth === undefined ? {} : { auth });
  const outcome = await withTimeout(
    new Promise((resolve) => {
      socket.once("connect", () => resolve({ connected: true, socket }));
      socket.once("connect_error", (err) => resolve({ connected: false, err, socket }));
    }),
    WAIT_MS,
    `connect or connect_error (${config.key})`,
  );
  if (outcome.connected) await ready(socket, config);
  return outcome;
}

function assertRefused(outcome, reason, label) {
  assert.equal(outcome.connected, false, `${label}: refused`);
  assert.equal(outcome.err.message, "unauthorized", `${label}: err.message`);
  assert.deepEqual(outcome.err.data, { code: "unauthorized", reason }, `${label}: err.data`);
  assert.equal(outcome.socket.connected, false, `${label}: not connected`);
}

function useServer(flags) {
  const h = { server: null };
  before(async () => {
    h.server = await startChatServer({ flags: await flags() });
  });
  after(async () => {
    await h.server?.stop();
  });
  return h;
}

const secretBytes = crypto.randomBytes(32).toString("base64url");
const hmacKey = new TextEncoder().encode(secretBytes);

describe("token auth with an HMAC secret", skipUnlessOwnServer("--auth-jwt-* flags"), () => {
  const h = useServer(async () => ({
    "auth-jwt-secret-file": await writeKeyFile("secret", `${secretBytes}\n`),
    "auth-jwt-issuer": ISSUER,
    "auth-jwt-audience": AUDIENCE,
  }));

  for (const config of CONFIGS) {
    test(`refusals name their reason (${config.key})`, T, async () => {
      const clients = new ChatClients(h.server.url);
      try {
        const t = now();
        const cases = [
          ["no auth at all", undefined, "missing_token"],
          ["auth without a token", {}, "missing_token"],
          ["an empty token", { token: "" }, "missing_token"],
          ["a token that is no JWT", { token: "not.a.jwt" }, "invalid_token"],
          ["a token of the wrong type", { token: 42 }, "invalid_token"],
          ["a passed exp", { token: await sign(hmacKey, "HS256", { exp: t - 60 }) }, "expired_token"],
          ["no exp", { token: await sign(hmacKey, "HS256", { exp: undefined }) }, "invalid_token"],
          ["nbf in the future", { token: await sign(hmacKey, "HS256", { nbf: t + 120 }) }, "invalid_token"],
          ["another issuer", { token: await sign(hmacKey, "HS256", { iss: "https://evil.test" }) }, "invalid_token"],
          ["another audience", { token: await sign(hmacKey, "HS256", { aud: "another-app" }) }, "invalid_token"],
          ["no iss", { token: await sign(hmacKey, "HS256", { iss: undefined }) }, "invalid_token"],
          ["no aud", { token: await sign(hmacKey, "HS256", { aud: undefined }) }, "invalid_token"],
          ["no sub", { token: await sign(hmacKey, "HS256", { sub: undefined }) }, "invalid_token"],
          ["a sub of 129 characters", { token: await sign(hmacKey, "HS256", { sub: "x".repeat(129) }) }, "invalid_token"],
          ["a name breaking the username rules", { token: await sign(hmacKey, "HS256", { name: " " }) }, "invalid_token"],
          [
            "another secret",
            { token: await sign(new TextEncoder().encode("not the secret"), "HS256") },
            "invalid_token",
          ],
          [
            "alg none",
            { token: unsigned("none", { sub: "reader-1", iss: ISSUER, aud: AUDIENCE, exp: t + 600 }) },
            "invalid_token",
          ],
          [
            "the secret with its trailing newline",
            { token: await sign(new TextEncoder().encode(`${secretBytes}\n`), "HS256") },
            "invalid_token",
          ],
        ];
        for (const [label, auth, reason] of cases) {
          assertRefused(await attempt(clients, config, auth), reason, label);
        }
        // An expired token with a bad signature is invalid, not expired.
        const forgedExpired = await sign(new TextEncoder().encode("not the secret"), "HS256", { exp: t - 60 });
        assertRefused(await attempt(clients, config, { token: forgedExpired }), "invalid_token", "forged and expired");
      } finally {
        clients.closeAll();
      }
    });
  }

  for (const [i, alg] of ["HS256", "HS384", "HS512"].entries()) {
    const config = CONFIGS[i % CONFIGS.length];
    test(`${alg} tokens are accepted (${config.key})`, T, async () => {
      const clients = new ChatClients(h.server.url);
      try {
        const outcome = await attempt(clients, config, { token: await sign(hmacKey, alg) });
        assert.equal(outcome.connected, true, `${alg}: ${outcome.err?.message} ${JSON.stringify(outcome.err?.data)}`);
        // Leeway: an exp 10 s ago is still inside the default 30 s.
        const late = await attempt(clients, config, { token: await sign(hmacKey, alg, { exp: now() - 10 }) });
        assert.equal(late.connected, true, "a token inside the leeway is accepted");
      } finally {
        clients.closeAll();
      }
    });
  }

  for (const config of CONFIGS) {
    test(`the token is the identity; payloads may leave userId out (${config.key})`, T, async () => {
      const clients = new ChatClients(h.server.url);
      try {
        const bookId = newBook();
        const sub = `sub-${crypto.randomUUID()}`;
        const observer = await clients.connect(config, { auth: { token: await sign(hmacKey, "HS256", { sub: `obs-${sub}` }) } });
        await join(observer, { bookId, username: "Observer" });
        // The token binds the identity at connection: even a first join may not claim another.
        const claimant = await clients.connect(config, { auth: { token: await sign(hmacKey, "HS256", { sub }) } });
        assertError(assert, (await join(claimant, { bookId, userId: "someone-else", username: "Q" })).ack, "identity_mismatch");
        const reader = await clients.connect(config, { auth: { token: await sign(hmacKey, "HS256", { sub }) } });
        // Without `name` in the token, the payload gives the username; userId may be left out.
        const { ack } = await join(reader, { bookId, username: "Queequeg" });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        assertPresence(assert, await observer.rec.waitMatch("userJoined", (e) => e.username === "Queequeg"), "Queequeg");
        const sent = await post(reader, { bookId, username: "Queequeg", content: "Call me later." });
        assert.equal(sent.ok, true, JSON.stringify(sent));
        assert.equal(sent.message.userId, sub, "the message's userId is the token's sub");
        // The same sub given explicitly is fine; another one is identity_mismatch, and so is
        // a join with another userId.
        const same = await post(reader, { bookId, userId: sub, username: "Queequeg", content: "Same me." });
        assert.equal(same.ok, true, JSON.stringify(same));
        assertError(assert, await post(reader, { bookId, userId: "someone-else", username: "Q", content: "x" }), "identity_mismatch");
        assertError(assert, await join(reader, { bookId: newBook(), userId: "someone-else", username: "Q" }).then((r) => r.ack), "identity_mismatch");
        assertError(assert, await leave(reader, { bookId, userId: "someone-else", username: "Q" }), "identity_mismatch");
        // Still bound to the token, not to the first payload: userId is never taken from one.
        const again = await post(reader, { bookId, username: "Queequeg", content: "Still me." });
        assert.equal(again.message?.userId, sub, JSON.stringify(again));
        // Without `name`, a payload must still give a username.
        assertError(assert, await post(reader, { bookId, content: "no name" }), "invalid_payload", /username/);
      } finally {
        clients.closeAll();
      }
    });

    test(`a token's name is the username whatever the payload says (${config.key})`, T, async () => {
      const clients = new ChatClients(h.server.url);
      try {
        const bookId = newBook();
        const sub = `named-${crypto.randomUUID()}`;
        const observer = await clients.connect(config, { auth: { token: await sign(hmacKey, "HS256", { sub: `obs-${sub}` }) } });
        await join(observer, { bookId, username: "Observer" });
        const reader = await clients.connect(config, {
          auth: { token: await sign(hmacKey, "HS384", { sub, name: "  Ishmael " }) },
        });
        const { ack } = await join(reader, { bookId, username: "Ahab" });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        assertPresence(assert, await observer.rec.waitMatch("userJoined", () => true), "Ishmael");
        // The payload may leave both userId and username out.
        const sent = await post(reader, { bookId, content: "Call me Ishmael." });
        assert.equal(sent.ok, true, JSON.stringify(sent));
        assert.equal(sent.message.username, "Ishmael");
        assert.equal(sent.message.userId, sub);
        const seen = await observer.rec.waitMatch("newMessage", (m) => m._id === sent.message._id);
        assert.equal(seen.username, "Ishmael");
        const renamed = await post(reader, { bookId, username: 17, content: "A number is not read." });
        assert.equal(renamed.message?.username, "Ishmael", JSON.stringify(renamed));
        const left = await leave(reader, { bookId });
        assert.equal(left.ok, true, JSON.stringify(left));
        assertPresence(assert, await observer.rec.waitMatch("userLeft", () => true), "Ishmael");
      } finally {
        clients.closeAll();
      }
    });
  }
});

/** The PEM public key and a `jose` signing key of each type, made with node's crypto. */
function keyPair(type, options) {
  const { publicKey, privateKey } = crypto.generateKeyPairSync(type, options);
  return { pem: publicKey.export({ type: "spki", format: "pem" }), privateKey };
}

const KEY_TYPES = [
  {
    name: "rsa",
    pair: () => keyPair("rsa", { modulusLength: 2048 }),
    accepted: ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
    foreign: () => [["ES256", keyPair("ec", { namedCurve: "P-256" }).privateKey]],
  },
  {
    name: "p256",
    pair: () => keyPair("ec", { namedCurve: "P-256" }),
    accepted: ["ES256"],
    foreign: () => [["ES384", keyPair("ec", { namedCurve: "P-384" }).privateKey]],
  },
  {
    name: "p384",
    pair: () => keyPair("ec", { namedCurve: "P-384" }),
    accepted: ["ES384"],
    foreign: () => [["ES256", keyPair("ec", { namedCurve: "P-256" }).privateKey]],
  },
  {
    name: "ed25519",
    pair: () => keyPair("ed25519"),
    accepted: ["EdDSA"],
    foreign: () => [["RS256", keyPair("rsa", { modulusLength: 2048 }).privateKey]],
  },
];

for (const type of KEY_TYPES) {
  describe(`token auth with an ${type.name} public key`, skipUnlessOwnServer("--auth-jwt-* flags"), () => {
    const key = type.pair();
    const h = useServer(async () => ({
      "auth-jwt-public-key-file": await writeKeyFile(`${type.name}.pem`, key.pem),
    }));

    test(`each algorithm of the key type is accepted, on every transport`, T, async () => {
      const clients = new ChatClients(h.server.url);
      try {
        for (const [i, alg] of type.accepted.entries()) {
          const config = CONFIGS[i % CONFIGS.length];
          const token = await sign(key.privateKey, alg, { iss: undefined, aud: undefined });
          const outcome = await attempt(clients, config, { token });
          assert.equal(outcome.connected, true, `${alg} (${config.key}): ${JSON.stringify(outcome.err?.data)}`);
        }
      } finally {
        clients.closeAll();
      }
    });

    for (const config of CONFIGS) {
      test(`algorithm confusion and other key types are refused (${config.key})`, T, async () => {
        const clients = new ChatClients(h.server.url);
        try {
          const claims = { iss: undefined, aud: undefined };
          // HS256/384/512 "signed" with the public key's PEM text as the HMAC secret.
          for (const alg of ["HS256", "HS384", "HS512"]) {
            const forged = await sign(new TextEncoder().encode(key.pem), alg, claims);
            assertRefused(await attempt(clients, config, { token: forged }), "invalid_token", `${alg} with the PEM text`);
          }
          // A token of an algorithm this key type does not serve, signed with a key that does.
          for (const [alg, foreignKey] of type.foreign()) {
            const token = await sign(foreignKey, alg, claims);
            assertRefused(await attempt(clients, config, { token }), "invalid_token", `${alg} on a ${type.name} key`);
          }
          // The right algorithm with another key of the same type.
          const other = type.pair();
          const token = await sign(other.privateKey, type.accepted[0], claims);
          assertRefused(await attempt(clients, config, { token }), "invalid_token", "another key");
          const none = unsigned("none", { sub: "reader-1", exp: now() + 600 });
          assertRefused(await attempt(clients, config, { token: none }), "invalid_token", "alg none");
        } finally {
          clients.closeAll();
        }
      });
    }
  });
}

describe("token expiry closes the connection", skipUnlessOwnServer("--auth-jwt-* flags"), () => {
  const h = useServer(async () => ({
    "auth-jwt-secret-file": await writeKeyFile("expiry-secret", secretBytes),
    "auth-jwt-leeway": 0,
  }));

  for (const config of CONFIGS) {
    test(`at exp the transport closes, the room sees the reader leave, and a fresh token reconnects (${config.key})`, T, async () => {
      const clients = new ChatClients(h.server.url);
      const sub = `expiring-${crypto.randomUUID()}`;
      const minted = [];
      // socket.io-client asks the callback again on every reconnection.
      const auth = async (cb) => {
        const short = minted.length === 0;
        const exp = short ? now() + 3 : now() + 600;
        minted.push(exp);
        cb({ token: await sign(hmacKey, "HS256", { sub, exp, iss: undefined, aud: undefined }) });
      };
      const socket = io(h.server.url, {
        forceNew: true,
        auth,
        reconnectionDelay: 100,
        reconnectionDelayMax: 200,
        timeout: WAIT_MS,
        ...config.opts,
      });
      try {
        const observer = await clients.connect(config, {
          auth: { token: await sign(hmacKey, "HS256", { sub: `obs-${sub}`, iss: undefined, aud: undefined }) },
        });
        const bookId = newBook();
        await join(observer, { bookId, username: "Observer" });
        await ready(socket, config);
        const firstId = socket.id;
        const joined = await socket.timeout(WAIT_MS).emitWithAck("joinRoom", { bookId, username: "Stubb" });
        assert.equal(joined.ok, true, JSON.stringify(joined));
        const disconnected = new Promise((resolve) => socket.once("disconnect", (reason) => resolve({ reason, at: Date.now() })));
        const reconnected = new Promise((resolve) => socket.io.once("reconnect", () => resolve(Date.now())));
        const { reason, at } = await withTimeout(disconnected, 6000, "the close at expiry");
        const expMs = minted[0] * 1000;
        assert.ok(at >= expMs - 50, `closed ${expMs - at} ms before exp`);
        assert.ok(at <= expMs + 1500, `closed ${at - expMs} ms after exp`);
        // An Engine.IO close, not a Socket.IO disconnect: the client reconnects by itself.
        assert.ok(["transport close", "transport error"].includes(reason), `disconnect reason ${reason}`);
        const left = await observer.rec.waitMatch("userLeft", (e) => e.username === "Stubb", 3000, "userLeft for the expired reader");
        assertPresence(assert, left, "Stubb");
        await withTimeout(reconnected, 5000, "the reconnection with a fresh token");
        await waitUntil(() => socket.connected, WAIT_MS, "connected again");
        assert.equal(minted.length, 2, "the auth callback was asked once more");
        assert.notEqual(socket.id, firstId, "a new connection, not a recovered one");
        assert.equal(socket.recovered, false, "a close at token expiry is not recoverable");
        // The new connection holds the fresh token's identity and stays open past the old exp.
        const rejoined = await socket.timeout(WAIT_MS).emitWithAck("joinRoom", { bookId, username: "Stubb" });
        assert.equal(rejoined.ok, true, JSON.stringify(rejoined));
        const sent = await socket.timeout(WAIT_MS).emitWithAck("chatMessage", { bookId, username: "Stubb", content: "back" });
        assert.equal(sent.message?.userId, sub, JSON.stringify(sent));
        await new Promise((resolve) => setTimeout(resolve, 1000));
        assert.equal(socket.connected, true, "the fresh token's connection stays open");
      } finally {
        socket.io.reconnection(false);
        socket.disconnect();
        clients.closeAll();
      }
    });
  }
});

describe("a recovering connection presents its token like any other", skipUnlessOwnServer("--auth-jwt-* flags"), () => {
  const h = useServer(async () => ({
    "auth-jwt-secret-file": await writeKeyFile("recovery-secret", secretBytes),
  }));

  for (const config of CONFIGS) {
    test(`same sub: recovered; another sub: fresh; a bad token: refused (${config.key})`, T, async () => {
      const sub = `recovering-${crypto.randomUUID()}`;
      let token = await sign(hmacKey, "HS256", { sub, iss: undefined, aud: undefined });
      // socket.io-client asks the callback again at every reconnection; `pid` and `offset`
      // are merged into what it answers.
      const socket = io(h.server.url, { forceNew: true, auth: (cb) => cb({ token }), timeout: WAIT_MS, ...config.opts });
      const drop = async () => {
        const dropped = new Promise((resolve) => socket.once("disconnect", resolve));
        socket.io.engine.close();
        await withTimeout(dropped, WAIT_MS, "the drop");
        return new Promise((resolve, reject) => {
          socket.once("connect", resolve);
          socket.once("connect_error", reject);
        });
      };
      try {
        await ready(socket, config);
        const bookId = newBook();
        const joined = await socket.timeout(WAIT_MS).emitWithAck("joinRoom", { bookId, username: "Queequeg" });
        assert.equal(joined.ok, true, JSON.stringify(joined));
        const firstId = socket.id;
        // A fresh token of the same reader: recovered, still in the room.
        token = await sign(hmacKey, "HS256", { sub, iss: undefined, aud: undefined, exp: now() + 900 });
        await withTimeout(drop(), 10_000, "the reconnection");
        assert.equal(socket.recovered, true, "the same sub recovers");
        assert.equal(socket.id, firstId);
        const sent = await socket.timeout(WAIT_MS).emitWithAck("chatMessage", { bookId, username: "Queequeg", content: "still here" });
        assert.equal(sent.ok, true, JSON.stringify(sent));
        assert.equal(sent.message.userId, sub);
        // Another reader's token on the same pid: a fresh connection, in no room.
        token = await sign(hmacKey, "HS256", { sub: `${sub}-other`, iss: undefined, aud: undefined });
        await withTimeout(drop(), 10_000, "the reconnection as another reader");
        assert.equal(socket.recovered, false, "another sub starts fresh");
        assert.notEqual(socket.id, firstId);
        const notIn = await socket.timeout(WAIT_MS).emitWithAck("chatMessage", { bookId, username: "Queequeg", content: "who am I" });
        assertError(assert, notIn, "not_in_room");
        // A bad token is refused like on any connection.
        token = "not.a.token";
        const refused = await withTimeout(drop().then(() => null, (err) => err), 10_000, "the refusal");
        assert.ok(refused, "the reconnection with a bad token is refused");
        assert.equal(refused.message, "unauthorized");
        assert.equal(refused.data?.reason, "invalid_token");
      } finally {
        socket.io.reconnection(false);
        socket.disconnect();
      }
    });
  }
});

after(async () => {
  if (tmpDir) await fs.rm(tmpDir, { recursive: true, force: true });
});
