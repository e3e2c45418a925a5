"""python-socketio (sync ``socketio.Client``) against ``protocol-testserver``.

Each behaviour runs over websocket only, polling only, and the default (polling, then the
upgrade to websocket); see ``conftest.py``. Every wait is bounded by ``WAIT`` seconds.
"""

import json
import threading
import time

import engineio.payload
import pytest
import socketio

from conftest import WAIT

JSON_PAYLOAD = {
    "text": "héllo wörld ✓",
    "int": 42,
    "float": 1.5,
    "neg": -7,
    "bool": True,
    "null": None,
    "list": [1, "two", {"three": [3]}],
    "nested": {"a": {"b": {"c": "deep"}}},
    "empty": {},
}


class Inbox:
    """Collects the arguments of every received ``event``; waits are bounded."""

    def __init__(self, client, event, namespace=None):
        self.items = []
        self._cond = threading.Condition()
        self.event = event

        def handler(*args):
            with self._cond:
                self.items.append(args)
                self._cond.notify_all()

        client.on(event, handler, namespace=namespace)

    def wait(self, count=1, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.items) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"got {len(self.items)} '{self.event}' event(s) within {timeout} s, "
                        f"wanted {count}: {self.items!r}"
                    )
                self._cond.wait(left)
            return list(self.items)

    def first(self, timeout=WAIT):
        return self.wait(1, timeout)[0]


class WireLog:
    """The Socket.IO packets of Engine.IO MESSAGE packets, in the order they came off the
    wire. (python-socketio runs each event handler in its own thread, so the order in
    which handlers run is not the order the server sent the events.)"""

    def __init__(self, client):
        self.texts = []
        original = client.eio._receive_packet

        def receive(pkt):
            if isinstance(pkt.data, str):
                self.texts.append(pkt.data)
            return original(pkt)

        client.eio._receive_packet = receive

    def events(self, name):
        """Decoded ``[name, *args]`` arrays of the received (binary) events ``name``."""
        found = []
        for text in self.texts:
            if text[:1] in ("2", "5") and "[" in text:
                data = json.loads(text[text.index("["):])
                if data and data[0] == name:
                    found.append(data)
        return found


def wait_event(event: threading.Event, what: str, timeout=WAIT):
    assert event.wait(timeout), f"timed out after {timeout} s waiting for {what}"


# ---------------------------------------------------------------------------------------
# connection and plain events
# ---------------------------------------------------------------------------------------


def test_connect_sets_sid_and_transport(connect, transports):
    connected = threading.Event()
    client = connect(lambda c: c.on("connect", connected.set))
    wait_event(connected, "the connect handler")
    assert client.connected
    # python-socketio's `sid` is the Engine.IO session id; get_sid() gives the Socket.IO id
    assert isinstance(client.sid, str) and client.sid
    assert client.sid == client.eio.sid
    socket_id = client.get_sid("/")
    assert isinstance(socket_id, str) and socket_id
    # the Socket.IO id of a socket is not its Engine.IO session id (v5 protocol)
    assert socket_id != client.sid
    if transports is None:
        deadline = time.monotonic() + WAIT
        while client.transport() != "websocket" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.transport() == "websocket", "the default client never upgraded"
    else:
        assert client.transport() == transports[0]


def test_echo_json(connect):
    client = connect(lambda c: setattr(c, "inbox", Inbox(c, "echo")))
    client.emit("echo", JSON_PAYLOAD)
    assert client.inbox.first() == (JSON_PAYLOAD,)


def test_echo_multiple_args(connect):
    client = connect(lambda c: setattr(c, "inbox", Inbox(c, "echo")))
    client.emit("echo", ("one", 2, [3.5, None], {"four": 4}))
    assert client.inbox.first() == ("one", 2, [3.5, None], {"four": 4})


def test_echo_in_order(connect):
    # at most 15 events: a polling response may carry them all, and python-engineio's
    # client refuses a payload of more than 16 packets (Payload.max_decode_packets)
    def setup(c):
        c.inbox = Inbox(c, "echo")
        c.wire = WireLog(c)

    client = connect(setup)
    for i in range(15):
        client.emit("echo", {"seq": i})
    got = client.inbox.wait(15)
    assert sorted(got, key=lambda args: args[0]["seq"]) == [({"seq": i},) for i in range(15)]
    assert [data[1]["seq"] for data in client.wire.events("echo")] == list(range(15))


def test_echo_burst_in_order(connect, monkeypatch):
    # The server batches every queued packet into one polling response, as the reference
    # servers do; python-engineio's client drops the connection on a payload of more than
    # Payload.max_decode_packets (16) packets (a known client limit, python-engineio#142,
    # whose documented workaround is raising that class attribute).
    monkeypatch.setattr(engineio.payload.Payload, "max_decode_packets", 1000)
    def setup(c):
        c.inbox = Inbox(c, "echo")
        c.wire = WireLog(c)

    client = connect(setup)
    for i in range(200):
        client.emit("echo", {"seq": i, "blob": bytes([i]) * 3} if i % 10 == 0 else {"seq": i})
    expected = [
        ({"seq": i, "blob": bytes([i]) * 3} if i % 10 == 0 else {"seq": i},) for i in range(200)
    ]
    got = client.inbox.wait(200)
    assert sorted(got, key=lambda args: args[0]["seq"]) == expected
    assert [data[1]["seq"] for data in client.wire.events("echo")] == list(range(200))


# ---------------------------------------------------------------------------------------
# acknowledgements
# ---------------------------------------------------------------------------------------


def test_call_ack_returns_same_args(connect):
    client = connect()
    assert client.call("ack", JSON_PAYLOAD, timeout=WAIT) == JSON_PAYLOAD
    assert client.call("ack", ("a", 1, {"b": [2]}), timeout=WAIT) == ("a", 1, {"b": [2]})
    assert client.call("ack", "just a string", timeout=WAIT) == "just a string"


def test_emit_with_callback(connect):
    client = connect()
    got = []
    done = threading.Event()

    def callback(*args):
        got.append(args)
        done.set()

    client.emit("ack", ("x", {"y": 1}), callback=callback)
    wait_event(done, "the ack callback")
    assert got == [("x", {"y": 1})]


def test_server_to_client_ack(connect):
    questions = []

    def setup(c):
        c.inbox = Inbox(c, "answer")

        @c.on("question")
        def question(*args):
            questions.append(args)
            return {"reply": "forty-two", "to": list(args)}

    client = connect(setup)
    client.emit("ask", {"q": "life"})
    assert client.inbox.first() == ({"reply": "forty-two", "to": [{"q": "life"}]},)
    assert questions == [({"q": "life"},)]


def test_server_to_client_ack_multiple_values(connect):
    def setup(c):
        c.inbox = Inbox(c, "answer")
        c.on("question", lambda *args: ("first", 2, {"third": True}))

    client = connect(setup)
    client.emit("ask", "q")
    assert client.inbox.first() == ("first", 2, {"third": True})


# ---------------------------------------------------------------------------------------
# binary
# ---------------------------------------------------------------------------------------

BLOB = bytes(range(256)) * 4  # every byte value, 1 KiB
SMALL = b"\x00\xffbinary\x01\x02"


def test_binary_echo_top_level(connect):
    client = connect(lambda c: setattr(c, "inbox", Inbox(c, "echo")))
    client.emit("echo", BLOB)
    (got,) = client.inbox.first()
    assert isinstance(got, bytes)
    assert got == BLOB


def test_binary_echo_nested(connect):
    client = connect(lambda c: setattr(c, "inbox", Inbox(c, "echo")))
    data = {"name": "file.bin", "content": BLOB, "parts": [SMALL, {"deep": b""}], "n": 3}
    client.emit("echo", data)
    (got,) = client.inbox.first()
    assert got == data
    assert isinstance(got["content"], bytes)
    assert isinstance(got["parts"][0], bytes)
    assert isinstance(got["parts"][1]["deep"], bytes)


def test_binary_echo_multiple_args(connect):
    client = connect(lambda c: setattr(c, "inbox", Inbox(c, "echo")))
    client.emit("echo", (SMALL, "text", {"blob": BLOB}))
    assert client.inbox.first() == (SMALL, "text", {"blob": BLOB})


def test_binary_call_ack(connect):
    client = connect()
    assert client.call("ack", BLOB, timeout=WAIT) == BLOB
    got = client.call("ack", ({"blob": SMALL, "list": [BLOB]}, SMALL), timeout=WAIT)
    assert got == ({"blob": SMALL, "list": [BLOB]}, SMALL)
    assert isinstance(got[1], bytes)


def test_binary_then_text_interleaved(connect):
    def setup(c):
        c.inbox = Inbox(c, "echo")
        c.wire = WireLog(c)

    client = connect(setup)
    sent = []
    for i in range(10):
        item = {"i": i, "blob": bytes([i]) * (i + 1)} if i % 2 else {"i": i}
        sent.append((item,))
        client.emit("echo", item)
    assert sorted(client.inbox.wait(10), key=lambda args: args[0]["i"]) == sent
    assert [data[1]["i"] for data in client.wire.events("echo")] == list(range(10))


# ---------------------------------------------------------------------------------------
# namespaces
# ---------------------------------------------------------------------------------------


def test_custom_namespace_alongside_root(connect):
    def setup(c):
        c.root_inbox = Inbox(c, "echo", namespace="/")
        c.custom_inbox = Inbox(c, "echo", namespace="/custom")

    client = connect(setup, namespaces=["/", "/custom"])
    assert set(client.namespaces) == {"/", "/custom"}
    root_sid, custom_sid = client.get_sid("/"), client.get_sid("/custom")
    assert root_sid and custom_sid and root_sid != custom_sid

    client.emit("echo", "to-root", namespace="/")
    client.emit("echo", {"to": "custom", "blob": SMALL}, namespace="/custom")
    assert client.root_inbox.first() == ("to-root",)
    assert client.custom_inbox.first() == ({"to": "custom", "blob": SMALL},)
    assert client.call("ack", "c", namespace="/custom", timeout=WAIT) == "c"
    assert client.call("ack", "r", namespace="/", timeout=WAIT) == "r"
    time.sleep(0.2)  # nothing crossed over between the namespaces
    assert client.root_inbox.items == [("to-root",)]
    assert client.custom_inbox.items == [({"to": "custom", "blob": SMALL},)]


def test_custom_namespace_only(connect):
    client = connect(namespaces=["/custom"])
    assert list(client.namespaces) == ["/custom"]
    assert client.call("ack", {"only": "custom"}, namespace="/custom", timeout=WAIT) == {
        "only": "custom"
    }


def test_refused_connection_bad_token(connect):
    errors = []

    def setup(c):
        c.on("connect_error", lambda *args: errors.append(args))

    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(setup, auth={"token": "bad"})
    assert errors, "connect_error handler was not called"
    assert errors[-1] == ({"message": "unauthorized", "data": {"reason": "bad token"}},)


def test_good_token_accepted(connect):
    client = connect(auth={"token": "good"})
    assert client.connected
    assert client.call("ack", "ok", timeout=WAIT) == "ok"


def test_unknown_namespace_fails(connect):
    errors = []

    def setup(c):
        c.on("connect_error", lambda *args: errors.append(args), namespace="/nope")

    with pytest.raises(socketio.exceptions.ConnectionError) as info:
        connect(setup, namespaces=["/nope"])
    assert "/nope" in str(info.value)
    assert errors, "connect_error handler was not called for /nope"
    (data,) = errors[-1]
    message = data.get("message") if isinstance(data, dict) else data
    assert message == "Invalid namespace"


def test_unknown_namespace_alongside_root_fails(connect):
    with pytest.raises(socketio.exceptions.ConnectionError) as info:
        connect(namespaces=["/", "/nope"])
    assert "/nope" in str(info.value)


# ---------------------------------------------------------------------------------------
# disconnection
# ---------------------------------------------------------------------------------------


def test_server_side_disconnect(connect):
    disconnected = threading.Event()
    reasons = []

    def setup(c):
        @c.on("disconnect")
        def on_disconnect(reason=None):
            reasons.append(reason)
            disconnected.set()

    client = connect(setup)
    client.emit("bye")
    wait_event(disconnected, "the disconnect handler after 'bye'")
    assert reasons == [socketio.Client.reason.SERVER_DISCONNECT]
    deadline = time.monotonic() + WAIT
    while client.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not client.connected


def test_server_side_disconnect_of_one_namespace(connect):
    custom_gone = threading.Event()
    root_gone = threading.Event()

    def setup(c):
        c.on("disconnect", lambda reason=None: custom_gone.set(), namespace="/custom")
        c.on("disconnect", lambda reason=None: root_gone.set(), namespace="/")

    client = connect(setup, namespaces=["/", "/custom"])
    client.emit("bye", namespace="/custom")
    wait_event(custom_gone, "the /custom disconnect handler after 'bye'")
    assert not root_gone.is_set()
    assert client.connected
    assert list(client.namespaces) == ["/"]
    assert client.call("ack", "still here", timeout=WAIT) == "still here"


def test_client_disconnect_then_reconnect(connect, server, transports):
    client = connect()
    first_sid = client.get_sid("/")
    client.disconnect()
    assert not client.connected
    client.connect(server.url, transports=transports, wait_timeout=WAIT)
    assert client.get_sid("/") and client.get_sid("/") != first_sid
    assert client.call("ack", "again", timeout=WAIT) == "again"


# ---------------------------------------------------------------------------------------
# rooms across shards
# ---------------------------------------------------------------------------------------

N_CLIENTS = 12


def test_room_broadcast_across_shards(connect):
    clients = []
    for _ in range(N_CLIENTS):
        clients.append(connect(lambda c: setattr(c, "inbox", Inbox(c, "broadcast"))))
    for client in clients:
        assert client.call("join", "py", timeout=WAIT) is True

    payload = {"hello": "room py", "n": [1, 2, 3], "from": clients[0].get_sid("/")}
    assert clients[0].call("broadcast", ("py", payload, False), timeout=WAIT) is True
    for i, client in enumerate(clients):
        assert client.inbox.first() == (payload,), f"client {i}"
    time.sleep(0.5)  # let any duplicate arrive
    counts = [len(c.inbox.items) for c in clients]
    assert counts == [1] * N_CLIENTS, f"broadcast deliveries per client: {counts}"


def test_room_broadcast_binary_payload(connect):
    # `broadcast` relays args[1] to the room; a binary payload must arrive as bytes
    clients = []
    for _ in range(4):
        clients.append(connect(lambda c: setattr(c, "inbox", Inbox(c, "broadcast"))))
    for client in clients:
        assert client.call("join", "py-bin", timeout=WAIT) is True
    payload = {"hello": "binary room", "blob": SMALL}
    assert clients[0].call("broadcast", ("py-bin", payload, False), timeout=WAIT) is True
    for i, client in enumerate(clients):
        assert client.inbox.first() == (payload,), f"client {i}"


def test_room_broadcast_except_self_and_leave(connect):
    clients = []
    for _ in range(4):
        clients.append(connect(lambda c: setattr(c, "inbox", Inbox(c, "broadcast"))))
    outsider = connect(lambda c: setattr(c, "inbox", Inbox(c, "broadcast")))
    for client in clients:
        assert client.call("join", "py-x", timeout=WAIT) is True
    assert clients[3].call("leave", "py-x", timeout=WAIT) is True

    assert clients[0].call("broadcast", ("py-x", "no-self", True), timeout=WAIT) is True
    for client in clients[1:3]:
        assert client.inbox.first() == ("no-self",)
    time.sleep(0.5)
    assert clients[0].inbox.items == []  # exceptSelf
    assert clients[3].inbox.items == []  # left the room
    assert outsider.inbox.items == []  # never joined
    assert [len(c.inbox.items) for c in clients[1:3]] == [1, 1]
