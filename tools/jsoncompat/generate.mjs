// What JavaScript's JSON.parse makes of a corpus of JSON texts, written down so that the Rust
// test `tests/json_compat.rs` can compare the server's decoder with it, case by case.
//
// Usage (from the repository root): node tools/jsoncompat/generate.mjs
// Writes tools/jsoncompat/corpus.jsonl; deterministic (no randomness, sorted sources), so a
// rerun with the same corpus rewrites the same file.
//
// The corpus: the JSON data of every text record in fuzz/seeds/sio_packet and
// fuzz/regressions/sio_packet, every fuzz/seeds/chat_payload (and regressions) input, and the
// hand-written cases below (lone surrogates, numbers beyond f64, -0, huge integers,
// duplicate keys, white space, BOM, control characters, deep nesting...). Each case is put in
// an event array, `["x",<case>]`, as the server sees it.
//
// Each line: {"b64": UTF-8 bytes of the array text, base64; "ok": whether JSON.parse accepts
// it; "value": JSON.stringify of the result after every string and key is made well-formed
// (a lone surrogate becomes U+FFFD, as a UTF-8 encoder does) -- so ±Infinity is written null}.

import { readFileSync, readdirSync, existsSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const MAX_CASE_BYTES = 4096;

function files(dir) {
  const path = join(root, dir);
  if (!existsSync(path)) return [];
  return readdirSync(path)
    .sort()
    .map((name) => readFileSync(join(path, name)));
}

// The JSON data of a Socket.IO packet text: after the type digit, `N-`, `/nsp,` and ack id.
function packetData(text) {
  const m = /^[0-6](?:\d+-)?(?:\/[^,]*,)?\d*/.exec(text);
  return m ? text.slice(m[0].length) : null;
}

// sio_packet records: tag (bit 0 binary, bit 1 two length bytes), length, body.
function sioRecords(buf) {
  const out = [];
  let i = 0;
  while (i < buf.length) {
    const tag = buf[i++];
    let len;
    if (tag & 2) {
      if (i + 2 > buf.length) break;
      len = buf[i] | (buf[i + 1] << 8);
      i += 2;
    } else {
      if (i + 1 > buf.length) break;
      len = buf[i++];
    }
    const body = buf.subarray(i, i + len);
    i += len;
    if (!(tag & 1)) out.push(body.toString("utf8"));
  }
  return out;
}

const cases = new Set();
for (const buf of [...files("fuzz/seeds/sio_packet"), ...files("fuzz/regressions/sio_packet")]) {
  for (const text of sioRecords(buf)) {
    const data = packetData(text);
    if (data) cases.add(data);
  }
}
for (const buf of [...files("fuzz/seeds/chat_payload"), ...files("fuzz/regressions/chat_payload")]) {
  if (buf.length > 1) cases.add(buf.subarray(1).toString("utf8"));
}

const handWritten = [
  // Lone UTF-16 surrogates, escaped, in values and keys (issue 10, item 1).
  String.raw`"half an emoji \ud83d"`,
  String.raw`"\udc00"`,
  String.raw`"\uD83D\uDE00"`,
  String.raw`"\ud83d\ud83d\ude00"`,
  String.raw`"\ude00\ud83d"`,
  String.raw`"\ud83d\n"`,
  String.raw`"\ud83d\u0041"`,
  String.raw`{"k\ud800":"\udfff"}`,
  String.raw`{"bookId":2701,"userId":"u1","username":"Ann","content":"half an emoji \ud83d"}`,
  // Numbers.
  "1e400", "-1e400", "1E+309", "1e308", "1.7976931348623157e308", "1.7976931348623159e308",
  "1e-400", "5e-324", "2e-324", "-0", "-0.0", "0e0", "-0e-0", "0.1", "1.0", "1e2", "1E2",
  "9007199254740993", "18446744073709551615", "18446744073709551616", "-9223372036854775809",
  "1" + "0".repeat(308), "1" + "0".repeat(309), "9".repeat(400), "-" + "9".repeat(400),
  "0." + "0".repeat(400) + "1", "123456789.123456789e-5",
  "01", "1.", ".5", "+1", "0x10", "1e", "1e+", "--1", "NaN", "Infinity", "-Infinity",
  // Duplicate keys, odd keys.
  `{"a":1,"b":2,"a":3}`, `{"__proto__":{"x":1}}`, `{"":0}`, `{"constructor":1}`,
  `{"content":[1],"content":"hi"}`,
  // White space: JSON's four, and others JSON.parse refuses.
  " [1] ", "\t[1]\n", "\r\n[1]\r\n", "[1,\t2]", "\u000b1", "\u000c1", "\u00a01", "\u20281",
  "\ufeff1", "1\ufeff", "\u2029[1]",
  // Control characters and other characters inside strings.
  '"a\u0000b"', '"a\u001fb"', '"a\u007fb"', '"a\u2028b"', '"a\u2029b"', '"\ufeff"',
  String.raw`"\u0000"`, String.raw`"\/"`, String.raw`"\'"`, String.raw`"\x41"`, String.raw`"\a"`,
  String.raw`"\u00e9"`, String.raw`"\u00E9"`, String.raw`"\u12"`, String.raw`"\uZZZZ"`,
  "\"caf\u00e9 \ud83d\ude00\"", "'single'",
  // Literals and structure.
  "true", "false", "null", "True", "nul", "[1,]", "[,1]", "{\"a\":1,}", "{a:1}", "[1 2]",
  "[]", "{}", "[[]]", '{"a":[{"b":null}]}', "", " ", "1 2", "[1]]", "[1][2]",
  // Nesting: within serde_json's 127 levels, and beyond (JSON.parse follows far deeper).
  "[".repeat(100) + "]".repeat(100),
  "[".repeat(126) + "]".repeat(126),
  "[".repeat(127) + "]".repeat(127),
  "[".repeat(1000) + "]".repeat(1000),
  '{"a":'.repeat(200) + "1" + "}".repeat(200),
  // Sizes: a wide array and a long string.
  "[" + Array(20000).fill("0").join(",") + "]",
  '"' + "x".repeat(3000) + '"',
];
const large = new Set(handWritten.filter((c) => Buffer.byteLength(c) > MAX_CASE_BYTES));
for (const c of handWritten) cases.add(c);

// A value with every string and key made well-formed, as a UTF-8 encoder would.
function wellFormed(v) {
  if (typeof v === "string") return v.toWellFormed();
  if (Array.isArray(v)) return v.map(wellFormed);
  if (v && typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) {
      Object.defineProperty(out, k.toWellFormed(), {
        value: wellFormed(x), enumerable: true, writable: true, configurable: true,
      });
    }
    return out;
  }
  return v;
}

const lines = [];
for (const c of [...cases].sort()) {
  if (Buffer.byteLength(c) > MAX_CASE_BYTES && !large.has(c)) continue;
  const text = `["x",${c}]`;
  let line;
  try {
    const value = JSON.parse(text);
    line = { b64: Buffer.from(text, "utf8").toString("base64"), ok: true, value: JSON.stringify(wellFormed(value)) };
  } catch {
    line = { b64: Buffer.from(text, "utf8").toString("base64"), ok: false, value: null };
  }
  lines.push(JSON.stringify(line));
}
writeFileSync(join(root, "tools/jsoncompat/corpus.jsonl"), lines.join("\n") + "\n");
console.log(`${lines.length} cases written to tools/jsoncompat/corpus.jsonl (node ${process.version})`);
