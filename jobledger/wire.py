"""A blocking HTTP/1.1 connection per thread: the synchronous client's request–answer calls.

:class:`~jobledger.sync.Client` sends its per-job calls (submit, get, wait)
from the caller's own thread over a keep-alive connection that thread keeps,
written with the standard library's ``http.client``: about a tenth of a
millisecond of the caller's CPU a call here, against a third of one for an
httpx client and more for a hop to an event loop's thread (docs/performance.md).
Streams and the rarer calls keep the :class:`~jobledger.client.AsyncClient`.

A kept connection the server has closed meanwhile (uvicorn closes one idle
for 5 s) is seen before it is used and opened again. A connection lost
during a call raises :class:`~jobledger.errors.ConnectionLost`, except that
a call that is safe to send twice (a read, or a submit with an idempotency
key) is sent once more on a fresh connection when a kept one failed.
"""

from __future__ import annotations

import http.client
import select
import threading
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from jobledger.errors import ConnectionLost, unreachable

_DROPPED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
"""What a kept connection the server closed raises when it is used."""


class Answer:
    """An HTTP answer, read whole: what :func:`~jobledger.errors.raise_for_problem` reads."""

    __slots__ = ("status_code", "reason_phrase", "content")

    def __init__(self, status_code: int, reason_phrase: str, content: bytes) -> None:
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.content = content

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return orjson.loads(self.content)


class BlockingHttp:
    """Connections to one base URL, one per calling thread, kept alive."""

    def __init__(self, base_url: str, headers: dict[str, str], connect_timeout_s: float, read_timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the API's URL must be http:// or https://, not {base_url!r}")
        self.base_url = base_url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._headers = {"Accept": "application/json", **headers}
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        sent_headers = {**self._headers, **(headers or {})}
        body = None
        if json is not None:
            body = orjson.dumps(json)
            sent_headers["Content-Type"] = "application/json"
        repeatable = method == "GET" or "Idempotency-Key" in sent_headers
        connection, kept = self._connection()
        try:
            return self._exchange(connection, method, target, body, sent_headers)
        except _DROPPED as error:
            if not (kept and repeatable):
                raise ConnectionLost(method, self.base_url + target, error) from error
        except (OSError, http.client.HTTPException) as error:
            raise ConnectionLost(method, self.base_url + target, error) from error
        connection, _ = self._connection()
        try:
            return self._exchange(connection, method, target, body, sent_headers)
        except (OSError, http.client.HTTPException) as error:
            raise ConnectionLost(method, self.base_url + target, error) from error

    def close(self) -> None:
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    def _exchange(self, connection: http.client.HTTPConnection, method: str, target: str, body, headers) -> Answer:
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            answer = Answer(response.status, response.reason, response.read())
        except BaseException:
            self._forget(connection)  # half a request or half an answer: the connection is done
            raise
        if response.will_close:
            self._forget(connection)
        return answer

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it was kept from an earlier call."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None and connection.sock is not None and not _closed_by_peer(connection.sock):
            return connection, True
        if connection is not None:
            self._forget(connection)
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = kind(self._host, self._port, timeout=self._connect_timeout_s)
        try:
            connection.connect()
        except OSError as error:
            raise unreachable(self.base_url, error) from error
        connection.sock.settimeout(self._read_timeout_s)
        self._local.connection = connection
        with self._lock:
            self._open.add(connection)
        return connection, False

    def _forget(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        with self._lock:
            self._open.discard(connection)


def _closed_by_peer(sock) -> bool:
    """A kept connection with something to read before a request is sent has
    been closed by the server (or holds bytes nobody asked for): not reusable."""
    if _poll is None:  # Windows
        return bool(select.select([sock], [], [], 0)[0])
    poller = _poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


_poll = getattr(select, "poll", None)
