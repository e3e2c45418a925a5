"""Who is here, driven by python-socketio against ``readrealm-chat --shards 2`` (docs/API.md):
the ``members``/``memberCount`` of the ``joinRoom`` ack, ``roomMembers``, and per-reader
presence (a second tab of a reader tells nobody; the last one leaving sends one ``userLeft``).

This module starts its own ``readrealm-chat`` (from ``$READREALM_BIN_DIR`` or
``<repo>/target/release``) on a fresh data directory; the rest of the suite uses
``protocol-testserver`` (conftest.py).
"""

import itertools
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import socketio

from conftest import TRANSPORTS, WAIT

REPO_ROOT = Path(__file__).resolve().parents[2]
GRACE = 0.3
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def chat_url():
    bin_dir = os.environ.get("READREALM_BIN_DIR") or str(REPO_ROOT / "target" / "release")
    binary = Path(bin_dir) / "readrealm-chat"
    if not binary.exists():
        pytest.fail(f"{binary} not found: run `cargo build --release` or set READREALM_BIN_DIR")
    with tempfile.TemporaryDirectory(prefix="readrealm-presence-") as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("READREALM_")}
        proc = subprocess.Popen(
            # Recovery off: python-socketio 5.18 has no connection state recovery, and its
            # disconnect() closes the WebSocket without waiting for its DISCONNECT packet to be
            # written, so the server may see a dropped connection, which (recovery on) keeps the
            # reader in its rooms for the window (docs/API.md) instead of leaving at once.
            [str(binary), "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--shards", "2",
             "--recovery-window", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        port = []
        ready = threading.Event()

        def read_stdout():
            for line in proc.stdout:
                match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if match and not port:
                    port.append(int(match.group(1)))
                    ready.set()

        threading.Thread(target=read_stdout, daemon=True).start()
        try:
            if not ready.wait(20):
                pytest.fail("readrealm-chat did not print its address within 20 s")
            yield f"http://127.0.0.1:{port[0]}"
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Reader:
    """One connection: a sync python-socketio client that records presence events."""

    def __init__(self, url, transports):
        self.events = []
        self.lock = threading.Lock()
        self.client = socketio.Client(reconnection=False)
        for name in ("userJoined", "userLeft"):
            self.client.on(name, self._recorder(name))
        self.client.connect(url, transports=transports, wait_timeout=WAIT)

    def _recorder(self, name):
        def record(data):
            with self.lock:
                self.events.append((name, data))

        return record

    def of(self, name):
        with self.lock:
            return [data for (event, data) in self.events if event == name]

    def wait_for(self, name, count):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if len(self.of(name)) >= count:
                return self.of(name)
            time.sleep(0.01)
        raise AssertionError(f"{count} {name} expected, got {self.of(name)}")

    def call(self, event, payload):
        return self.client.call(event, payload, timeout=WAIT)

    def close(self):
        self.client.disconnect()


def user(tag):
    n = next(_ids)
    return {"userId": f"py-{os.getpid()}-{n}", "username": f"{tag}-{n}"}


def member(u):
    return {"userId": u["userId"], "username": u["username"]}


def by_id(members):
    return sorted(members, key=lambda m: m["userId"])


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_members_and_per_reader_presence(chat_url, transport):
    transports = TRANSPORTS[transport]
    book = 500_000 + next(_ids)
    a, b = user("a"), user("b")
    readers = []
    try:
        tab1 = Reader(chat_url, transports)
        readers.append(tab1)
        other = Reader(chat_url, transports)
        readers.append(other)
        ack = tab1.call("joinRoom", {"bookId": book, **a})
        assert ack == {"ok": True, "room": f"book_{book}", "members": [member(a)], "memberCount": 1}
        ack = other.call("joinRoom", {"bookId": str(book), **b})
        assert ack["ok"] is True and ack["memberCount"] == 2
        assert by_id(ack["members"]) == by_id([member(a), member(b)])
        assert tab1.wait_for("userJoined", 1)[0]["username"] == b["username"]

        # A second tab of reader a, under another name: listed once with the first name.
        tab2 = Reader(chat_url, transports)
        readers.append(tab2)
        ack = tab2.call("joinRoom", {"bookId": book, "userId": a["userId"], "username": "tab two"})
        assert by_id(ack["members"]) == by_id([member(a), member(b)])
        assert ack["memberCount"] == 2
        for asker in (tab1, tab2, other):
            answer = asker.call("roomMembers", {"bookId": book})
            assert answer["ok"] is True and answer["memberCount"] == 2
            assert by_id(answer["members"]) == by_id([member(a), member(b)])
        tab2.close()
        time.sleep(GRACE)
        assert other.of("userJoined") == [] and other.of("userLeft") == [], "the second tab told nobody"

        assert tab1.call("leaveRoom", {"bookId": book, "username": a["username"]}) == {"ok": True}
        left = other.wait_for("userLeft", 1)
        assert left[0]["username"] == a["username"]
        time.sleep(GRACE)
        assert len(other.of("userLeft")) == 1
        assert other.call("roomMembers", {"bookId": book}) == {
            "ok": True,
            "members": [member(b)],
            "memberCount": 1,
        }
        not_in = tab1.call("roomMembers", {"bookId": book})
        assert not_in["ok"] is False and not_in["error"]["code"] == "not_in_room"
    finally:
        for r in readers:
            r.close()
