"""relay's HTTP/1.1 client against real sockets: framing, keep-alive, stale connections, bad answers, TLS."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from relay.transports.h1 import BodyTooLarge, ConnectFailed, HttpClient, ProtocolFailed

pytestmark = pytest.mark.anyio

Handler = Callable[[socket.socket, int], None]  # (connection, index of the connection) -> None


@contextmanager
def raw_server(handler: Handler, tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, list[bytes]]]:
    """A real TCP server on loopback whose answers are exact bytes written by the test."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    seen: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        n = 0
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            if tls is not None:
                try:
                    conn = tls.wrap_socket(conn, server_side=True)
                except ssl.SSLError:
                    conn.close()
                    continue
            threading.Thread(target=handler, args=(conn, n), daemon=True).start()
            n += 1

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"http{'s' if tls else ''}://127.0.0.1:{listener.getsockname()[1]}/mcp", seen
    finally:
        stop.set()
        t.join(2)
        listener.close()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


async def test_content_length_and_keep_alive_reuse_one_connection() -> None:
    connections: list[int] = []

    def handler(conn: socket.socket, n: int) -> None:
        connections.append(n)
        while req := read_request(conn):
            body = b'{"ok":' + str(len(req)).encode() + b"}"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        conn.close()

    with raw_server(handler) as (url, _):
        async with HttpClient({"x-base": "1"}) as client:
            for _ in range(3):
                resp = await client.request("POST", url, {"content-type": "application/json"}, b"{}")
                assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
                assert (await resp.read(1024)).startswith(b'{"ok":')
    assert connections == [0]


async def test_chunked_body_streams_in_pieces() -> None:
    def handler(conn: socket.socket, n: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        conn.close()

    with raw_server(handler) as (url, _):
        async with HttpClient({}) as client:
            resp = await client.request("GET", url, {})
            assert [c async for c in resp.aiter_raw()] == [b"hello", b" world"]


async def test_a_stale_keep_alive_connection_is_retried_once_on_a_fresh_one() -> None:
    def handler(conn: socket.socket, n: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        if n == 0:
            conn.close()  # the server drops the idle connection: the client's next request finds it dead
            return
        while read_request(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with raw_server(handler) as (url, _):
        async with HttpClient({}) as client:
            assert await (await client.request("GET", url, {})).read(10) == b"ok"
            await anyio.sleep(0.1)
            assert await (await client.request("GET", url, {})).read(10) == b"ok"


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # closed before the body is complete
    b"NOT HTTP AT ALL\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # a chunk size that is not hex
])
async def test_malformed_answers_are_protocol_errors(answer: bytes) -> None:
    def handler(conn: socket.socket, n: int) -> None:
        read_request(conn)
        conn.sendall(answer)
        conn.close()

    with raw_server(handler) as (url, _):
        async with HttpClient({}) as client:
            with pytest.raises(ProtocolFailed):
                resp = await client.request("GET", url, {})
                await resp.read(1000)


async def test_headers_beyond_the_limit_are_refused() -> None:
    def handler(conn: socket.socket, n: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 100_000 + b"\r\n\r\n")
        conn.close()

    with raw_server(handler) as (url, _):
        async with HttpClient({}) as client:
            with pytest.raises(ProtocolFailed):
                await client.request("GET", url, {})


async def test_a_body_over_the_limit_is_refused_without_reading_it_all() -> None:
    def handler(conn: socket.socket, n: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
        conn.close()

    with raw_server(handler) as (url, _):
        async with HttpClient({}) as client:
            resp = await client.request("GET", url, {})
            with pytest.raises(BodyTooLarge):
                await resp.read(10_000)


async def test_nothing_listening_is_a_connect_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with HttpClient({}) as client:
        with pytest.raises(ConnectFailed):
            await client.request("GET", f"http://127.0.0.1:{port}/", {})


def _self_signed(tmp: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return ctx


async def test_tls_certificates_are_verified(tmp_path: Path) -> None:
    def handler(conn: socket.socket, n: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.close()

    with raw_server(handler, tls=_self_signed(tmp_path)) as (url, _):
        async with HttpClient({}) as client:
            with pytest.raises(ConnectFailed, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
                await client.request("GET", url, {})
