"""Fixtures for the python-socketio interoperability suite.

A session-scoped fixture starts ``protocol-testserver`` (from ``$READREALM_BIN_DIR`` or
``<repo>/target/release``) on a free loopback port with 2 shards, and kills it at the end.
Every test that takes ``transports`` runs three times: websocket only, polling only, and the
client's default (polling, then an upgrade to websocket).

The clients log every Socket.IO and Engine.IO packet at INFO level to the ``sio-test``
loggers; pytest shows those lines (and the server's stderr) only for a failing test.
Set ``SIO_LOG=0`` to turn the packet logging off.
"""

import functools
import logging
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import socketio
from socketio import packet as sio_packet

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Bound for any single wait in the suite, in seconds.
WAIT = 5.0

TRANSPORTS = {
    "websocket": ["websocket"],
    "polling": ["polling"],
    "default": None,  # polling first, then the upgrade to websocket
}

_LOG_PACKETS = os.environ.get("SIO_LOG", "1") != "0"
SIO_LOGGER = logging.getLogger("sio-test.socketio")
EIO_LOGGER = logging.getLogger("sio-test.engineio")
for _logger in (SIO_LOGGER, EIO_LOGGER):
    _logger.setLevel(logging.INFO if _LOG_PACKETS else logging.WARNING)


def server_binary() -> Path:
    bin_dir = os.environ.get("READREALM_BIN_DIR") or str(REPO_ROOT / "target" / "release")
    return Path(bin_dir) / "protocol-testserver"


class Server:
    """A running ``protocol-testserver`` process."""

    def __init__(self, shards: int = 2):
        binary = server_binary()
        if not binary.exists():
            raise RuntimeError(
                f"{binary} not found: run `cargo build --release --bin protocol-testserver` "
                "or set READREALM_BIN_DIR"
            )
        self.proc = subprocess.Popen(
            [str(binary), "--listen", "127.0.0.1:0", "--shards", str(shards)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._stdout = []
        self._stderr = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.port = None
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self._ready.wait(10) or self.port is None:
            self.stop()
            raise RuntimeError(
                "protocol-testserver did not print its address within 10 s "
                f"(exit code {self.proc.poll()}); stdout={''.join(self._stdout)!r} "
                f"stderr={self.stderr()!r}"
            )
        self.url = f"http://127.0.0.1:{self.port}"

    def _read_stdout(self):
        for line in self.proc.stdout:
            with self._lock:
                self._stdout.append(line)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._ready.set()
        self._ready.set()  # EOF: the process ended; the waiter reports it

    def _read_stderr(self):
        for line in self.proc.stderr:
            with self._lock:
                self._stderr.append(line)

    def stderr(self) -> str:
        with self._lock:
            return "".join(self._stderr)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass


def _disconnect_without_race(client, original_disconnect):
    """``socketio.Client.disconnect()`` without python-engineio's polling race.

    The library's ``disconnect()`` queues the namespace DISCONNECT packets, then
    ``engineio.Client.disconnect()`` queues CLOSE and flips the state to 'disconnecting'.
    On polling, the write loop often wakes on the first packet, POSTs it alone (``41``),
    and then leaves because the state is no longer 'connected': CLOSE is never sent, and
    ``disconnect()`` blocks on the read loop's pending GET until the server's next PING
    (the 25 s ping interval). Here the DISCONNECT packets are flushed first and the
    Engine.IO CLOSE follows, so the server sees the same packets as from a clean
    disconnect (``41`` then ``1``) and answers the pending GET at once.
    """
    if client.eio.state != "connected":
        original_disconnect()  # nothing to send: only resets the client
        return
    queue = client.eio.queue
    # packets a failed send left unfinished stay counted: wait for ours only
    baseline = queue.unfinished_tasks
    for namespace in list(client.namespaces):
        client._send_packet(client.packet_class(sio_packet.DISCONNECT, namespace=namespace))
    deadline = time.monotonic() + WAIT
    while (
        queue.unfinished_tasks > baseline
        and client.eio.state == "connected"
        and time.monotonic() < deadline
    ):
        time.sleep(0.005)
    time.sleep(0.02)  # let the write loop get back to waiting on its queue
    client.eio.disconnect()


@pytest.fixture(scope="session")
def server():
    srv = Server(shards=2)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(params=list(TRANSPORTS), ids=list(TRANSPORTS))
def transports(request):
    """``transports=`` argument for ``Client.connect``: websocket, polling or the default."""
    return TRANSPORTS[request.param]


@pytest.fixture
def make_client(server, request):
    """Factory of ``socketio.Client`` objects (no reconnection, packet logging, the
    race-free ``disconnect``), all of which are disconnected when the test ends. After the
    test, the server must still be running."""
    clients = []

    def make(**kwargs):
        kwargs.setdefault("reconnection", False)
        kwargs.setdefault("request_timeout", WAIT)
        kwargs.setdefault("logger", SIO_LOGGER)
        kwargs.setdefault("engineio_logger", EIO_LOGGER)
        client = socketio.Client(**kwargs)
        # also used by connect() itself when a namespace fails
        client.disconnect = functools.partial(
            _disconnect_without_race, client, client.disconnect
        )
        clients.append(client)
        return client

    yield make

    for client in clients:
        try:
            client.disconnect()
        except Exception:  # pragma: no cover - teardown must go on
            pass
    deadline = time.monotonic() + WAIT
    while any(c.connected for c in clients) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.alive():
        pytest.fail(
            f"protocol-testserver exited (code {server.proc.poll()}) during "
            f"{request.node.nodeid}; stderr:\n{server.stderr()}"
        )


@pytest.fixture
def connect(server, make_client, transports):
    """Creates a client, lets ``setup(client)`` register handlers, then connects it to the
    test server with the test's transports. Extra keyword arguments go to ``connect``."""

    def do_connect(setup=None, client_kwargs=None, **connect_kwargs):
        client = make_client(**(client_kwargs or {}))
        if setup is not None:
            setup(client)
        connect_kwargs.setdefault("transports", transports)
        connect_kwargs.setdefault("wait_timeout", WAIT)
        client.connect(server.url, **connect_kwargs)
        return client

    return do_connect
