"""Token authentication (docs/API.md, "Token authentication") with python-socketio.

A module-scoped fixture starts ``readrealm-chat`` (from ``$READREALM_BIN_DIR`` or
``<repo>/target/release``) with ``--auth-jwt-secret-file`` on a fresh data directory and 2
shards. HS256 tokens are minted here with the standard library (RFC 7519: base64url JSON
header and claims, HMAC-SHA256 over them), independently of the server's JWT library.
Every test runs on websocket only, polling only and the default (polling, then upgrade).
"""

import base64
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import socketio

from conftest import EIO_LOGGER, REPO_ROOT, SIO_LOGGER, WAIT, _disconnect_without_race

SECRET = secrets.token_urlsafe(32).encode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(claims: dict, secret: bytes = SECRET, alg: str = "HS256") -> str:
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    signing_input = f"{header}.{body}".encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{header}.{body}.{b64url(signature)}"


def claims(**extra):
    base = {"sub": "py-reader", "exp": int(time.time()) + 600}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


class ChatServer:
    def __init__(self, secret_file: Path, data_dir: Path):
        binary = Path(os.environ.get("READREALM_BIN_DIR") or REPO_ROOT / "target" / "release")
        binary = binary / "readrealm-chat"
        if not binary.exists():
            raise RuntimeError(f"{binary} not found: cargo build --release, or set READREALM_BIN_DIR")
        env = {k: v for k, v in os.environ.items() if not k.startswith("READREALM_")}
        self.proc = subprocess.Popen(
            [
                str(binary),
                "--listen", "127.0.0.1:0",
                "--shards", "2",
                "--data-dir", str(data_dir),
                "--auth-jwt-secret-file", str(secret_file),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.port = None
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(20) or self.port is None:
            self.stop()
            raise RuntimeError("readrealm-chat did not print its address within 20 s")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()


@pytest.fixture(scope="module")
def chat_server():
    tmp = Path(tempfile.mkdtemp(prefix="readrealm-auth-py-"))
    secret_file = tmp / "secret"
    secret_file.write_bytes(SECRET + b"\r\n")
    server = ChatServer(secret_file, tmp / "data")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def chat_client(chat_server, transports):
    """``chat_client(auth=..., setup=...)``: a connected-or-refused client; the
    ``ConnectionError`` of a refusal is raised to the test."""
    clients = []

    def make(auth=None, setup=None):
        client = socketio.Client(
            reconnection=False,
            request_timeout=WAIT,
            logger=SIO_LOGGER,
            engineio_logger=EIO_LOGGER,
        )
        client.disconnect = functools.partial(_disconnect_without_race, client, client.disconnect)
        clients.append(client)
        if setup:
            setup(client)
        client.connect(chat_server.url, auth=auth, transports=transports, wait_timeout=WAIT)
        return client

    yield make
    for client in clients:
        try:
            client.disconnect()
        except Exception:  # pragma: no cover - teardown must go on
            pass


@pytest.mark.parametrize(
    "auth, reason",
    [
        (None, "missing_token"),
        ({}, "missing_token"),
        ({"token": "not-a-jwt"}, "invalid_token"),
        ({"token": mint(claims(), secret=b"not the secret")}, "invalid_token"),
        ({"token": mint(claims(exp=None))}, "invalid_token"),
        ({"token": mint(claims(nbf=int(time.time()) + 300))}, "invalid_token"),
        ({"token": mint(claims(), alg="none")}, "invalid_token"),
        ({"token": mint(claims(exp=int(time.time()) - 300))}, "expired_token"),
    ],
    ids=["no-auth", "no-token", "garbage", "bad-signature", "no-exp", "nbf-future", "alg-none", "expired"],
)
def test_refusal_reason(chat_client, auth, reason):
    errors = []

    def setup(client):
        client.on("connect_error", lambda *args: errors.append(args))

    with pytest.raises(socketio.exceptions.ConnectionError):
        chat_client(auth=auth, setup=setup)
    assert errors, "connect_error handler was not called"
    assert errors[-1] == ({"message": "unauthorized", "data": {"code": "unauthorized", "reason": reason}},)


def test_token_identity_and_name(chat_client):
    book_id = secrets.randbelow(10**9) + 10**6
    sub = f"py-{secrets.token_hex(6)}"
    client = chat_client(auth={"token": mint(claims(sub=sub, name="Starbuck"))})
    assert client.connected
    joined = client.call("joinRoom", {"bookId": book_id}, timeout=WAIT)
    assert joined["ok"] is True and joined["room"] == f"book_{book_id}", joined
    sent = client.call("chatMessage", {"bookId": book_id, "username": "Ahab", "content": "Aye."}, timeout=WAIT)
    assert sent["ok"] is True, sent
    assert sent["message"]["userId"] == sub
    assert sent["message"]["username"] == "Starbuck"
    other = client.call(
        "chatMessage", {"bookId": book_id, "userId": "not-" + sub, "content": "x"}, timeout=WAIT
    )
    assert other["ok"] is False and other["error"]["code"] == "identity_mismatch", other
