"""A small S3-compatible object store on local disk: the embedded broker's log.

Tansu keeps its log in S3. For one machine we serve the handful of S3 calls it
makes (PUT, GET, HEAD, DELETE, ListObjectsV2) from a directory, because the
off-the-shelf local S3 servers write objects in place: a read racing a write
sees half an object, and Tansu drops the connection. Here every write goes to
a temporary file that is renamed over the object, so a reader sees the old
object or the new one, and a ``kill -9`` never leaves a torn one.
Conditional writes (``If-None-Match: *``, ``If-Match``) are honoured, which
Tansu relies on for its metadata.

Requests are not authenticated: it listens on loopback only.

    python -m services.embedded.objectstore --dir var/broker-s3 --port 19000
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote
from xml.sax.saxutils import escape

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

TMP_PREFIX = ".tmp-"


class ObjectStore:
    """Objects as files under ``root/<bucket>/<key>``, with an in-memory index
    of each directory listed so far: Tansu lists a partition's records on
    reads, so a listing must not cost a walk of the disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._dirs: dict[Path, _Directory] = {}

    def path(self, bucket: str, key: str) -> Path:
        path = (self.root / bucket / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or any(
            part.startswith(TMP_PREFIX) for part in Path(key).parts
        ):
            raise ValueError(f"invalid key {key!r}")
        return path

    @staticmethod
    def etag(path: Path) -> str | None:
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _etag(stat.st_mtime_ns, stat.st_size)

    def put(self, path: Path, body: bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        temporary.write_bytes(body)
        os.replace(temporary, path)
        stat = path.stat()
        self._forget_parents(path.parent)
        directory = self._dirs.get(path.parent)
        if directory is not None:
            directory.add(path.name, stat.st_size, stat.st_mtime_ns)
        return _etag(stat.st_mtime_ns, stat.st_size)

    def delete(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        directory = self._dirs.get(path.parent)
        if directory is not None:
            directory.remove(path.name)

    def list(self, bucket: str, prefix: str, start_after: str, limit: int) -> tuple[list[tuple[str, int, int]], bool]:
        """Up to ``limit`` ``(key, size, mtime_ns)`` after ``start_after``, and whether more follow."""
        base = self.root / bucket
        folder, _, stem = prefix.rpartition("/")
        directory = base / folder if folder else base
        found: list[tuple[str, int, int]] = []
        self._collect(base, directory, prefix, start_after, limit + 1, found)
        return found[:limit], len(found) > limit

    def _collect(self, base: Path, directory: Path, prefix: str, start_after: str, limit: int, found: list) -> None:
        index = self._index(directory)
        if index is None:
            return
        relative = directory.relative_to(base).as_posix()
        key_prefix = "" if relative == "." else relative + "/"
        # Files and subdirectories together in key order, so pages stay sorted.
        names = sorted([(name, False) for name in index.files] + [(name + "/", True) for name in index.subdirs])
        for name, is_dir in names:
            if len(found) >= limit:
                return
            key = key_prefix + name
            if is_dir:
                if (key.startswith(prefix) or prefix.startswith(key)) and not (start_after and key < start_after[: len(key)]):
                    self._collect(base, directory / name.rstrip("/"), prefix, start_after, limit, found)
                continue
            if key.startswith(prefix) and key > start_after:
                size, mtime_ns = index.meta[name]
                found.append((key, size, mtime_ns))

    def _index(self, directory: Path) -> "_Directory | None":
        index = self._dirs.get(directory)
        if index is None:
            if not directory.is_dir():
                return None
            index = _Directory.scan(directory)
            self._dirs[directory] = index
        return index

    def _forget_parents(self, directory: Path) -> None:
        """A new directory appeared: its parent's cached index must learn about it."""
        parent = directory.parent
        index = self._dirs.get(parent)
        if index is not None and directory.name not in index.subdirs:
            index.subdirs.add(directory.name)
            self._forget_parents(parent)


class _Directory:
    def __init__(self) -> None:
        self.files: list[str] = []
        self.meta: dict[str, tuple[int, int]] = {}
        self.subdirs: set[str] = set()

    @classmethod
    def scan(cls, path: Path) -> "_Directory":
        index = cls()
        for entry in os.scandir(path):
            if entry.name.startswith(TMP_PREFIX):
                continue
            if entry.is_dir():
                index.subdirs.add(entry.name)
            else:
                stat = entry.stat()
                index.add(entry.name, stat.st_size, stat.st_mtime_ns)
        return index

    def add(self, name: str, size: int, mtime_ns: int) -> None:
        if name not in self.meta:
            bisect.insort(self.files, name)
        self.meta[name] = (size, mtime_ns)

    def remove(self, name: str) -> None:
        if self.meta.pop(name, None) is not None:
            self.files.remove(name)


def _etag(mtime_ns: int, size: int) -> str:
    return f'"{mtime_ns:x}-{size:x}"'


def create_app(root: Path) -> Starlette:
    store = ObjectStore(root)

    async def bucket(request: Request) -> Response:
        name = request.path_params["bucket"]
        if request.method == "PUT":
            (store.root / name).mkdir(parents=True, exist_ok=True)
            return Response(status_code=200)
        if request.method == "HEAD":
            return Response(status_code=200 if (store.root / name).is_dir() else 404)
        if request.method != "GET":
            return _error(405, "MethodNotAllowed", "not supported")
        query = request.query_params
        prefix = query.get("prefix", "")
        limit = min(int(query.get("max-keys", "1000")), 1000)
        start_after = query.get("continuation-token") or query.get("start-after") or ""
        delimiter = query.get("delimiter")
        entries, truncated = store.list(name, prefix, start_after, limit)
        contents, prefixes = [], []
        for key, size, mtime_ns in entries:
            if delimiter and delimiter in key[len(prefix):]:
                common = key[: len(prefix) + key[len(prefix):].index(delimiter) + len(delimiter)]
                if common not in prefixes:
                    prefixes.append(common)
                continue
            modified = datetime.fromtimestamp(mtime_ns / 1e9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            contents.append(
                f"<Contents><Key>{escape(key)}</Key><LastModified>{modified}</LastModified>"
                f"<ETag>{escape(_etag(mtime_ns, size))}</ETag><Size>{size}</Size>"
                "<StorageClass>STANDARD</StorageClass></Contents>"
            )
        next_token = f"<NextContinuationToken>{escape(entries[-1][0])}</NextContinuationToken>" if truncated else ""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{escape(name)}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(contents)}</KeyCount>"
            f"<MaxKeys>{limit}</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{next_token}"
            + "".join(contents)
            + "".join(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes)
            + "</ListBucketResult>"
        )
        return Response(body, media_type="application/xml")

    async def obj(request: Request) -> Response:
        try:
            path = store.path(request.path_params["bucket"], unquote(request.path_params["key"]))
        except ValueError as error:
            return _error(400, "InvalidArgument", str(error))
        if request.method == "PUT":
            body = await request.body()
            # No await between the check and the rename: the pair is atomic in this event loop.
            current = store.etag(path)
            if request.headers.get("if-none-match") == "*" and current is not None:
                return _error(412, "PreconditionFailed", "the object exists")
            if_match = request.headers.get("if-match")
            if if_match is not None and if_match != current:
                return _error(412, "PreconditionFailed", "the object changed")
            return Response(status_code=200, headers={"ETag": store.put(path, body)})
        if request.method == "DELETE":
            store.delete(path)
            return Response(status_code=204)
        try:
            with open(path, "rb") as file:  # one open file: the bytes and the ETag belong together
                stat = os.fstat(file.fileno())
                data = file.read() if request.method == "GET" else b""
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return _error(404, "NoSuchKey", "The specified key does not exist.", head=request.method == "HEAD")
        headers = {
            "ETag": _etag(stat.st_mtime_ns, stat.st_size),
            "Last-Modified": datetime.fromtimestamp(stat.st_mtime, timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT"),
        }
        if request.method == "HEAD":
            return Response(status_code=200, headers={**headers, "Content-Length": str(stat.st_size)})
        return _ranged(request, data, headers)

    return Starlette(
        routes=[
            Route("/{bucket}", bucket, methods=["GET", "PUT", "HEAD"]),
            Route("/{bucket}/", bucket, methods=["GET", "PUT", "HEAD"]),
            Route("/{bucket}/{key:path}", obj, methods=["GET", "PUT", "HEAD", "DELETE"]),
        ]
    )


def _ranged(request: Request, data: bytes, headers: dict[str, str]) -> Response:
    spec = request.headers.get("range", "")
    if not spec.startswith("bytes="):
        return Response(data, headers=headers, media_type="application/octet-stream")
    first, _, last = spec[len("bytes="):].partition("-")
    size = len(data)
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(size - 1, int(last)) if last else size - 1
    if start >= size:
        return _error(416, "InvalidRange", "The requested range is not satisfiable")
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(data[start : end + 1], status_code=206, headers=headers, media_type="application/octet-stream")


def _error(status: int, code: str, message: str, head: bool = False) -> Response:
    body = "" if head else (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message><RequestId>{hashlib.md5(message.encode()).hexdigest()[:16]}</RequestId></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.embedded.objectstore", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="directory holding the buckets")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=19000, help="port (default 19000)")
    parser.add_argument("--bucket", action="append", default=[], help="bucket to create at start (repeatable)")
    args = parser.parse_args()
    for name in args.bucket:
        (args.dir / name).mkdir(parents=True, exist_ok=True)
    uvicorn.run(create_app(args.dir), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
