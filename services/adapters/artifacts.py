"""The artifact store: results too large for the log, in an S3-compatible
store (S3Proxy embedded, MinIO in docker-compose, or S3 itself), through
aioboto3.

The runner stores a result whose JSON exceeds ``artifact_threshold_bytes``
and reports an :class:`~schemas.artifacts.ArtifactRef` instead; it fetches
the artifacts a step's inputs refer to (checking their sha256) before the
handler runs. Ingest streams them back to the job's tenant.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import quote, unquote

import aioboto3
import orjson
from botocore.config import Config
from botocore.exceptions import ClientError

from schemas.artifacts import ArtifactRef, artifact_key, upload_key
from schemas.errors import JobledgerError
from services.common.settings import ConnectionSettings

CHUNK_BYTES = 256 * 1024


class ArtifactMissing(JobledgerError):
    """The store holds no object for a reference (or the bytes do not match its sha256)."""


class ArtifactStore:
    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._bucket_ready = False

    async def start(self) -> "ArtifactStore":
        """Connects lazily: a store that is down fails the first put or read, not the service's start."""
        s = self.settings
        session = aioboto3.Session()
        self._client = await self._stack.enter_async_context(
            session.client(
                "s3",
                endpoint_url=s.s3_endpoint,
                aws_access_key_id=s.s3_access_key,
                aws_secret_access_key=s.s3_secret_key,
                region_name=s.s3_region,
                # Checksums only where S3 requires them: botocore's default streaming
                # CRC32 (aws-chunked) is newer than S3Proxy and some MinIO releases.
                config=Config(
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": 3, "mode": "standard"},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
        )
        return self

    async def stop(self) -> None:
        await self._stack.aclose()

    async def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        bucket = self.settings.s3_bucket
        try:
            await self._client.head_bucket(Bucket=bucket)
        except ClientError:
            try:
                await self._client.create_bucket(Bucket=bucket)
            except ClientError as error:  # another service created it meanwhile
                if error.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        self._bucket_ready = True

    async def put(self, data: bytes, *, tenant: str, job_id: str, name: str, attempt: int) -> ArtifactRef:
        await self._ensure_bucket()
        key = artifact_key(tenant, job_id, name, attempt)
        digest = hashlib.sha256(data).hexdigest()
        await self._client.put_object(
            Bucket=self.settings.s3_bucket, Key=key, Body=data, ContentType="application/json", Metadata={"sha256": digest}
        )
        return ArtifactRef(name=name, uri=f"s3://{self.settings.s3_bucket}/{key}", size=len(data), sha256=digest)

    async def put_upload(self, data: bytes, *, tenant: str, upload_id: str, filename: str, content_type: str) -> ArtifactRef:
        """Store an uploaded file (its sha256, name and type kept with it)."""
        await self._ensure_bucket()
        key = upload_key(tenant, upload_id)
        digest = hashlib.sha256(data).hexdigest()
        await self._client.put_object(
            Bucket=self.settings.s3_bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            Metadata={"sha256": digest, "filename": quote(filename, safe="")},
        )
        return ArtifactRef(
            name=filename, uri=f"s3://{self.settings.s3_bucket}/{key}", size=len(data), sha256=digest, content_type=content_type
        )

    async def upload(self, tenant: str, upload_id: str) -> ArtifactRef:
        """An uploaded file of ``tenant``, as stored (:class:`ArtifactMissing` if there is none)."""
        key = upload_key(tenant, upload_id)
        try:
            head = await self._client.head_object(Bucket=self.settings.s3_bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
                raise ArtifactMissing(f"no upload {upload_id!r}") from None
            raise
        metadata = head.get("Metadata", {})
        return ArtifactRef(
            name=unquote(metadata.get("filename", upload_id)),
            uri=f"s3://{self.settings.s3_bucket}/{key}",
            size=head["ContentLength"],
            sha256=metadata["sha256"],
            content_type=head.get("ContentType") or "application/octet-stream",
        )

    async def read_upload(self, tenant: str, upload_id: str) -> tuple[ArtifactRef, bytes]:
        """An uploaded file of ``tenant`` as stored, and its bytes checked against its sha256."""
        stored = await self.upload(tenant, upload_id)
        return stored, await self.read(stored)

    async def read(self, ref: ArtifactRef) -> bytes:
        """The whole artifact, checked against its sha256."""
        chunks = [chunk async for chunk in await self.stream(ref)]
        data = b"".join(chunks)
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise ArtifactMissing(f"artifact {ref.uri} does not match its sha256")
        return data

    async def stream(self, ref: ArtifactRef) -> AsyncIterator[bytes]:
        """The artifact's bytes as the store sends them. Raises :class:`ArtifactMissing`
        before the first chunk when there is no such object."""
        try:
            response = await self._client.get_object(Bucket=ref.bucket, Key=ref.key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchBucket", "404"):
                raise ArtifactMissing(f"no artifact at {ref.uri}") from None
            raise
        return _chunks(response["Body"])


async def _chunks(body) -> AsyncIterator[bytes]:
    async with body:
        while chunk := await body.read(CHUNK_BYTES):
            yield chunk


class Offloader:
    """What the runner does with results and inputs around a handler."""

    def __init__(self, store: ArtifactStore, threshold_bytes: int) -> None:
        self.store = store
        self.threshold_bytes = threshold_bytes

    async def inputs(self, refs: dict[str, ArtifactRef]) -> dict[str, Any]:
        """The values of the inputs stored as artifacts."""
        return {name: orjson.loads(await self.store.read(ref)) for name, ref in refs.items()}

    async def result(self, result: Any, *, tenant: str, job_id: str, name: str, attempt: int) -> dict[str, Any]:
        """The fields of a CompleteJob: the result itself, or a reference to it once stored."""
        try:
            encoded = orjson.dumps(result)
        except TypeError:  # not JSON: the report's own validation says why
            return {"result": result}
        if len(encoded) <= self.threshold_bytes:
            return {"result": result}
        ref = await self.store.put(encoded, tenant=tenant, job_id=job_id, name=name, attempt=attempt)
        return {"result": None, "artifact": ref}
