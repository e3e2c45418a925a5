"""``loadHistory`` (docs/API.md, "Older history") with python-socketio's ``Client.call``.

Unlike the rest of this suite (the protocol test server), these tests start the chat server
itself: ``readrealm-chat --shards 2`` on a fresh data directory, with a message rate high
enough to fill a room quickly. Each test runs on the three transports (``transports``).

Expected values come from the acknowledgements the poster received, never from the pages.
"""

import os
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import REPO_ROOT, WAIT, Server

ROOM = 88001
ROOM_SIZE = 1200


class ChatServer(Server):
    """A running ``readrealm-chat`` on a temporary data directory (removed at stop)."""

    def __init__(self):
        bin_dir = os.environ.get("READREALM_BIN_DIR") or str(REPO_ROOT / "target" / "release")
        binary = Path(bin_dir) / "readrealm-chat"
        if not binary.exists():
            raise RuntimeError(f"{binary} not found: build it or set READREALM_BIN_DIR")
        self.data_dir = tempfile.TemporaryDirectory(prefix="readrealm-py-history-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("READREALM_")}
        self.proc = subprocess.Popen(
            [
                str(binary),
                "--listen", "127.0.0.1:0",
                "--shards", "2",
                "--data-dir", self.data_dir.name,
                "--message-rate", "100000",
                "--message-burst", "100000",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._stdout = []
        self._stderr = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.port = None
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self._ready.wait(20) or self.port is None:
            self.stop()
            raise RuntimeError(f"readrealm-chat did not start; stderr={self.stderr()!r}")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        super().stop()
        self.data_dir.cleanup()


@pytest.fixture(scope="module")
def server():
    """Overrides the suite's protocol test server for this module: the chat server."""
    srv = ChatServer()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def room(server):
    """ROOM_SIZE messages posted to ROOM over WebSocket; the acked messages in order."""
    import socketio

    client = socketio.Client(reconnection=False, request_timeout=WAIT)
    client.connect(server.url, transports=["websocket"], wait_timeout=WAIT)
    user = {"userId": "py-poster", "username": "Poster"}
    assert client.call("joinRoom", {"bookId": ROOM, **user}, timeout=WAIT)["ok"] is True
    acked = []
    for i in range(ROOM_SIZE):
        ack = client.call(
            "chatMessage", {"bookId": ROOM, **user, "content": f"py line {i} ünïcode"}, timeout=WAIT
        )
        assert ack["ok"] is True, ack
        acked.append(ack["message"])
    client.disconnect()
    return acked


def joined(connect, book=ROOM):
    client = connect()
    ack = client.call("joinRoom", {"bookId": book, "userId": "py-reader", "username": "Reader"}, timeout=WAIT)
    assert ack["ok"] is True, ack
    return client


def test_paging_walks_the_room_to_its_first_message_each_once(connect, room):
    client = joined(connect)
    pages, seen, before = 0, [], None
    while True:
        payload = {"bookId": ROOM, "limit": 100}
        if before is not None:
            payload["before"] = before
        page = client.call("loadHistory", payload, timeout=WAIT)
        assert sorted(page) == ["hasMore", "messages", "ok"] and page["ok"] is True
        pages += 1
        seen.extend(page["messages"])
        if not page["hasMore"]:
            break
        before = page["messages"][-1]["_id"]
    assert pages == ROOM_SIZE // 100
    assert seen == list(reversed(room))
    assert len({m["_id"] for m in seen}) == ROOM_SIZE


@pytest.mark.parametrize("limit", [0, 101, 2.5, -1, "5", None, [5]])
def test_limit_out_of_its_rule_is_invalid_payload(connect, room, limit):
    client = joined(connect)
    ack = client.call("loadHistory", {"bookId": ROOM, "limit": limit}, timeout=WAIT)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload", ack
    assert ack["error"]["message"].startswith("limit"), ack


def test_before_malformed_not_joined_and_no_ack(connect, room):
    client = joined(connect)
    for before in [room[0]["_id"].upper(), room[0]["_id"][1:], 7, None]:
        ack = client.call("loadHistory", {"bookId": ROOM, "before": before}, timeout=WAIT)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload", ack
        assert ack["error"]["message"].startswith("before"), ack
    ack = client.call("loadHistory", {"bookId": ROOM + 1}, timeout=WAIT)
    assert ack["ok"] is False and ack["error"]["code"] == "not_in_room", ack
    exceptions = []
    got = threading.Event()

    def on_exception(data):
        exceptions.append(data)
        got.set()

    client.on("exception", on_exception)
    client.emit("loadHistory", {"bookId": ROOM})
    assert got.wait(WAIT), "an exception event"
    assert exceptions[0]["event"] == "loadHistory"
    assert exceptions[0]["code"] == "invalid_payload"
    # The connection is still served; the page below the 10th message is the 9 before it.
    page = client.call("loadHistory", {"bookId": ROOM, "before": room[9]["_id"]}, timeout=WAIT)
    assert page == {"ok": True, "messages": list(reversed(room[:9])), "hasMore": False}
