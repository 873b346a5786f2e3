"""S3 (and S3-compatible stores such as MinIO) through boto3.

Refs move with S3 conditional writes: ``If-None-Match: *`` creates a key only
if absent, ``If-Match: <etag>`` replaces it only if unchanged; the loser gets
412 Precondition Failed.  boto3's own retries are off: retrying is the job of
the ``RetryingBackend`` wrapper, so that it can be tested with injected faults
and counted.  Endpoint, region and credentials come from the usual AWS
environment and config files, plus the remote's ``endpoint-url``, ``region``
and ``profile`` settings.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from dsv.backends import (
    DOWNLOAD_BLOCK,
    Backend,
    BackendError,
    BucketNotFoundError,
    KeyNotFoundError,
    PreconditionFailedError,
    Sink,
    Stats,
)

# One request per pack up to this size; larger files use multipart uploads.
MULTIPART_THRESHOLD = 128 << 20
PART_SIZE = 32 << 20

_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
    "502",
    "504",
}


class S3Backend(Backend):
    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
    ) -> None:
        if not bucket:
            raise BackendError("an s3:// URL needs a bucket: s3://BUCKET/PREFIX")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.url = f"s3://{bucket}/{prefix}".rstrip("/")
        self.stats = Stats()
        self._endpoint_url = endpoint_url
        self._region = region
        self._profile = profile
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    session = boto3.session.Session(profile_name=self._profile)
                    self._client = session.client(
                        "s3",
                        endpoint_url=self._endpoint_url,
                        region_name=self._region,
                        config=Config(
                            retries={"total_max_attempts": 1},
                            connect_timeout=10,
                            read_timeout=60,
                            max_pool_connections=32,
                        ),
                    )
        return self._client

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise BackendError(f"invalid remote key {key!r}")
        return self.prefix + key

    def _error(self, exc: Exception, action: str, key: str) -> Exception:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
            ResponseStreamingError,
        )

        where = f"s3://{self.bucket}/{self._key(key)}"
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code == "NoSuchBucket":
                # not a missing key: a push must not go on to create the remote in it
                at = f" at {self._endpoint_url}" if self._endpoint_url else ""
                return BucketNotFoundError(
                    f"cannot {action} {where}: the bucket {self.bucket!r} does not exist{at}",
                    hint="create it first (dsv does not create buckets), or check the URL",
                )
            if code in ("NoSuchKey", "404", "NotFound") or status == 404:
                return KeyNotFoundError(f"{where} not found")
            if code in ("PreconditionFailed", "412") or status == 412:
                return PreconditionFailedError(f"{where} changed meanwhile")
            if code == "ConditionalRequestConflict" or status == 409:
                return PreconditionFailedError(f"{where}: concurrent conditional write")
            transient = code in _TRANSIENT_CODES or status >= 500 or status == 429
            return BackendError(
                f"cannot {action} {where}: {code} {err.get('Message', '')}".strip(),
                transient=transient,
            )
        if isinstance(
            exc,
            (
                EndpointConnectionError,
                ConnectTimeoutError,
                ReadTimeoutError,
                ConnectionClosedError,
                ResponseStreamingError,
            ),
        ):
            return BackendError(f"cannot {action} {where}: {exc}", transient=True)
        if isinstance(exc, BotoCoreError):
            return BackendError(f"cannot {action} {where}: {exc}", transient=False)
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return BackendError(f"cannot {action} {where}: {exc}", transient=True)
        return exc

    def _call(self, op: str, key: str, fn: Any, **kw: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, Key=self._key(key), **kw)
        except Exception as exc:
            self.stats.count(f"{op}_failed")  # a failed request is a request too
            raise self._error(exc, op, key) from None

    def _read_body(self, resp: Any, op: str, key: str) -> bytes:
        try:
            data: bytes = resp["Body"].read()
        except Exception as exc:
            raise self._error(exc, op, key) from None
        length = resp.get("ContentLength")
        if length is not None and len(data) != int(length):
            raise BackendError(
                f"short read of {key}: {len(data)} of {length} bytes", transient=True
            )
        return data

    def get(self, key: str) -> bytes:
        return self.get_with_tag(key)[0]

    def get_with_tag(self, key: str) -> tuple[bytes, str]:
        resp = self._call("get", key, self.client.get_object)
        data = self._read_body(resp, "get", key)
        self.stats.count("get", received=len(data))
        return data, str(resp.get("ETag", ""))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        resp = self._call(
            "get_range", key, self.client.get_object, Range=f"bytes={start}-{start + length - 1}"
        )
        data = self._read_body(resp, "get_range", key)
        self.stats.count("get_range", received=len(data))
        return data

    def download(self, key: str, sink: Sink) -> int:
        """One GET, its body streamed into ``sink`` in blocks (memory stays flat)."""
        resp = self._call("get", key, self.client.get_object)
        body, n = resp["Body"], 0
        try:
            sink.restart()
            while True:
                try:
                    block = body.read(DOWNLOAD_BLOCK)
                except Exception as exc:
                    raise self._error(exc, "get", key) from None
                if not block:
                    break
                sink.write(block)
                n += len(block)
        finally:
            body.close()
        length = resp.get("ContentLength")
        if length is not None and n != int(length):
            raise BackendError(f"short read of {key}: {n} of {length} bytes", transient=True)
        self.stats.count("get", received=n)
        return n

    def put(self, key: str, data: bytes) -> None:
        self._call("put", key, self.client.put_object, Body=data)
        self.stats.count("put", sent=len(data))

    def put_file(self, key: str, path: Path) -> None:
        size = path.stat().st_size
        if size <= MULTIPART_THRESHOLD:
            with open(path, "rb") as f:
                self._call("put", key, self.client.put_object, Body=f, ContentLength=size)
            self.stats.count("put", sent=size)
            return
        self._multipart(key, path, size)

    def _multipart(self, key: str, path: Path, size: int) -> None:
        up = self._call("put", key, self.client.create_multipart_upload)
        self.stats.count("multipart_create")
        upload_id = up["UploadId"]
        parts = []
        try:
            with open(path, "rb") as f:
                number = 1
                while True:
                    chunk = f.read(PART_SIZE)
                    if not chunk:
                        break
                    r = self._call(
                        "put",
                        key,
                        self.client.upload_part,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                    )
                    self.stats.count("multipart_part", sent=len(chunk))
                    parts.append({"ETag": r["ETag"], "PartNumber": number})
                    number += 1
            self._call(
                "put",
                key,
                self.client.complete_multipart_upload,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            self.stats.count("multipart_complete")
        except BaseException:
            # the upload is garbage either way (lifecycle rules reap it): best effort
            with contextlib.suppress(Exception):
                self._call("put", key, self.client.abort_multipart_upload, UploadId=upload_id)
            raise

    def put_if_absent(self, key: str, data: bytes) -> str:
        resp = self._call("put_if_absent", key, self.client.put_object, Body=data, IfNoneMatch="*")
        self.stats.count("put_if_absent", sent=len(data))
        return str(resp.get("ETag", ""))

    def put_if_match(self, key: str, data: bytes, tag: str) -> str:
        resp = self._call("put_if_match", key, self.client.put_object, Body=data, IfMatch=tag)
        self.stats.count("put_if_match", sent=len(data))
        return str(resp.get("ETag", ""))

    def list(self, prefix: str) -> dict[str, int]:
        out: dict[str, int] = {}
        token: str | None = None
        full_prefix = self.prefix + prefix.strip("/") + ("/" if prefix.strip("/") else "")
        while True:
            kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full_prefix}
            if token:
                kw["ContinuationToken"] = token
            try:
                resp = self.client.list_objects_v2(**kw)
            except Exception as exc:
                raise self._error(exc, "list", prefix or ".") from None
            self.stats.count("list")
            for obj in resp.get("Contents", []):
                out[obj["Key"][len(self.prefix) :]] = int(obj["Size"])
            if not resp.get("IsTruncated"):
                break
            token = resp.get("NextContinuationToken")
        return dict(sorted(out.items()))

    def delete(self, key: str) -> None:
        self._call("delete", key, self.client.delete_object)
        self.stats.count("delete")
