"""The synchronous client's blocking connection (jobledger.wire), against scripted loopback servers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from jobledger.errors import ConnectionLost, Unavailable
from jobledger.wire import BlockingHttp

ANSWER = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok": "1"}'


def _read_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    while len(body) < length:
        body += connection.recv(65536)
    return head


@contextmanager
def serving(script: Callable[[int, socket.socket], bool]) -> Iterator[tuple[str, list[int]]]:
    """A server calling ``script(n, connection)`` for the n-th request it reads
    (counted over all connections); the connection stays open while it returns True."""
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[int] = []
    requests = 0

    def run() -> None:
        nonlocal requests
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connections.append(1)
            with connection:
                while _read_request(connection):
                    requests += 1
                    if not script(requests, connection):
                        break

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", connections
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        listener.close()
        thread.join(5)


def answer(_: int, connection: socket.socket) -> bool:
    connection.sendall(ANSWER)
    return True


def test_calls_share_one_kept_connection():
    with serving(answer) as (url, connections):
        wire = BlockingHttp(url, {}, 5, 5)
        answers = [wire.request("GET", "/jobs/x", params={"wait_s": 1}).json() for _ in range(3)]
        wire.close()

    assert answers == [{"ok": "1"}] * 3
    assert len(connections) == 1


def test_a_connection_the_server_closed_while_idle_is_opened_again_even_for_a_post():
    def answer_then_close(n: int, connection: socket.socket) -> bool:
        connection.sendall(ANSWER)
        return False  # as uvicorn does with a connection idle past its keep-alive

    with serving(answer_then_close) as (url, connections):
        wire = BlockingHttp(url, {}, 5, 5)
        first = wire.request("POST", "/jobs", json={"type": "noop"})
        threading.Event().wait(0.1)  # the server's close has arrived
        second = wire.request("POST", "/jobs", json={"type": "noop"})
        wire.close()

    assert first.status_code == second.status_code == 200
    assert len(connections) == 2


@pytest.mark.parametrize(
    ("method", "headers", "sent_again"),
    [("GET", {}, True), ("POST", {"Idempotency-Key": "k"}, True), ("POST", {}, False)],
)
def test_a_kept_connection_lost_during_a_call_is_retried_only_when_sending_twice_is_safe(method, headers, sent_again):
    def lose_the_second(n: int, connection: socket.socket) -> bool:
        if n == 2:
            return False  # read the request, closed without an answer
        connection.sendall(ANSWER)
        return True

    with serving(lose_the_second) as (url, connections):
        wire = BlockingHttp(url, {}, 5, 5)
        wire.request("GET", "/health")
        if sent_again:
            assert wire.request(method, "/jobs", json={}, headers=headers).status_code == 200
        else:
            with pytest.raises(ConnectionLost, match="POST http://127.0.0.1:.*/jobs"):
                wire.request(method, "/jobs", json={}, headers=headers)
        wire.close()

    assert len(connections) == (2 if sent_again else 1)


def test_nothing_listening_is_unavailable_with_the_url():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    wire = BlockingHttp(f"http://127.0.0.1:{port}", {}, 5, 5)

    with pytest.raises(Unavailable) as raised:
        wire.request("GET", "/jobs")

    assert raised.value.status == 0 and f"127.0.0.1:{port}" in str(raised.value)


def test_a_url_that_is_not_http_is_refused_at_once():
    with pytest.raises(ValueError, match="http:// or https://"):
        BlockingHttp("ftp://example.org", {}, 5, 5)
