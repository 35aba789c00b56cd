"""Object storage behind the artifact store: a small protocol and its S3 implementation.

:class:`ObjectStore` is what :mod:`aimass.artifacts.remote` needs from a bucket:
put, get, exists, list and delete of named objects under one prefix. Names are
``/``-joined and relative to the prefix; callers validate them before they get
here. :class:`S3ObjectStore` speaks to any S3-compatible server through boto3
(``pip install 'aimass[s3]'``) and translates its failures into aimass errors
that name the bucket, the endpoint and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from aimass.errors import FailedPrecondition, InvalidArgument, MissingExtra, NotFound, Unavailable

if TYPE_CHECKING:
    from aimass.settings import Settings

__all__ = [
    "ObjectStat",
    "ObjectStore",
    "S3ObjectStore",
    "object_store_from_settings",
    "parse_s3_url",
    "register_object_store",
]

# S3 error codes that mean "the credentials are wrong", not "the object is missing".
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AccessDenied",
    "403",
}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True)
class ObjectStat:
    """What a HEAD request tells of an object."""

    size: int
    modified: float  # seconds since the epoch


class ObjectStore(Protocol):
    """Named objects under one prefix of a bucket (or anything that behaves like one)."""

    def describe(self) -> str:
        """Where the objects live, for messages (``s3://bucket/prefix at endpoint``)."""
        ...

    def put_file(self, path: Path, name: str) -> None:
        """Upload the local file ``path`` as object ``name`` (replacing it)."""
        ...

    def put_bytes(self, data: bytes, name: str) -> None:
        """Write ``data`` as object ``name`` (replacing it)."""
        ...

    def get_file(self, name: str, path: Path) -> None:
        """Download object ``name`` to the local file ``path``; :class:`NotFound` if missing."""
        ...

    def get_bytes(self, name: str) -> bytes | None:
        """The content of object ``name``, or ``None`` when there is none."""
        ...

    def exists(self, name: str) -> bool:
        """Whether object ``name`` exists."""
        ...

    def stat(self, name: str) -> ObjectStat | None:
        """Size and last write of object ``name``, or ``None`` when there is none."""
        ...

    def list(self, prefix: str) -> list[str]:
        """The names of the objects whose name starts with ``prefix``, sorted."""
        ...

    def delete(self, name: str) -> None:
        """Remove object ``name`` (nothing happens when it is missing)."""
        ...

    def check(self) -> None:
        """Raise unless the bucket answers and takes the credentials (a readiness probe)."""
        ...


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/PREFIX`` → ``(bucket, prefix)`` (the prefix without slashes at its ends)."""
    if not url.startswith("s3://"):
        raise FailedPrecondition(
            f"artifact_url {url!r} is not an object-storage URL; write s3://BUCKET/PREFIX",
            url=url,
        )
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise FailedPrecondition(f"artifact_url {url!r} names no bucket; write s3://BUCKET/PREFIX")
    return bucket, prefix.strip("/")


ObjectStoreFactory = Callable[["Settings"], ObjectStore]
_SCHEMES: dict[str, ObjectStoreFactory] = {}


def register_object_store(scheme: str) -> Callable[[ObjectStoreFactory], ObjectStoreFactory]:
    """Decorator: ``@register_object_store("s3")`` on ``factory(settings) -> ObjectStore``."""

    def decorate(factory: ObjectStoreFactory) -> ObjectStoreFactory:
        if scheme in _SCHEMES:
            raise InvalidArgument(f"object store scheme {scheme!r} is registered already")
        _SCHEMES[scheme] = factory
        return factory

    return decorate


def object_store_from_settings(settings: Settings) -> ObjectStore | None:
    """The object store ``AIMASS_ARTIFACT_URL`` names, or ``None`` when it is unset."""
    if settings.artifact_url is None:
        return None
    scheme = settings.artifact_url.partition("://")[0]
    if scheme not in _SCHEMES:
        raise InvalidArgument(
            f"artifact_url {settings.artifact_url!r}: no object store for {scheme!r}; "
            f"use one of {sorted(f'{s}://' for s in _SCHEMES)}",
            url=settings.artifact_url,
        )
    return _SCHEMES[scheme](settings)


@register_object_store("s3")
def _s3_from_settings(settings: Settings) -> ObjectStore:
    assert settings.artifact_url is not None
    bucket, prefix = parse_s3_url(settings.artifact_url)
    return S3ObjectStore(
        bucket, prefix=prefix, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
    )


class S3ObjectStore:
    """Objects in an S3 bucket (AWS, MinIO, Ceph, moto ... anything S3-compatible).

    Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance role). Nothing is
    created implicitly: a missing bucket is refused with the command that creates it.

    Args:
        bucket: The bucket name.
        prefix: Where under the bucket the objects live (``""``: at its top).
        endpoint_url: The S3 endpoint; ``None`` is AWS's own for ``region``.
        region: The bucket's region.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
    ) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise MissingExtra(
                "artifacts in object storage (AIMASS_ARTIFACT_URL) need: pip install 'aimass[s3]'"
            ) from exc
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        # A session of our own: boto3's default session is not thread-safe, clients are.
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )
        self._checked = False

    def describe(self) -> str:
        """``s3://bucket/prefix`` and, when set, the endpoint."""
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    def _name(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _fail(self, exc: Exception, doing: str) -> Exception:
        """An aimass error for a boto3/botocore failure while ``doing`` something."""
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        endpoint = self.endpoint_url or f"AWS S3 in {self.region}"
        if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
            return Unavailable(
                f"cannot reach the object store at {endpoint} while {doing}: {exc}; check "
                "AIMASS_S3_ENDPOINT_URL and that the server is running",
                endpoint=endpoint,
            )
        if isinstance(exc, NoCredentialsError):
            return FailedPrecondition(
                f"no credentials for bucket {self.bucket!r} at {endpoint}; set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
                bucket=self.bucket,
            )
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                return self._no_bucket()
            if code in _CREDENTIAL_CODES:
                return FailedPrecondition(
                    f"the object store at {endpoint} refused the credentials for bucket "
                    f"{self.bucket!r} while {doing} ({code}); check AWS_ACCESS_KEY_ID, "
                    "AWS_SECRET_ACCESS_KEY and the bucket's access policy",
                    bucket=self.bucket,
                )
        return Unavailable(
            f"the object store {self.describe()} failed while {doing}: {exc}",
            bucket=self.bucket,
        )

    def _no_bucket(self) -> FailedPrecondition:
        endpoint = f" --endpoint-url {self.endpoint_url}" if self.endpoint_url else ""
        return FailedPrecondition(
            f"bucket {self.bucket!r} does not exist at {self.endpoint_url or 'AWS S3'}; "
            f"create it (aws s3 mb s3://{self.bucket}{endpoint}) or fix AIMASS_ARTIFACT_URL",
            bucket=self.bucket,
        )

    def _check(self) -> None:
        """Check once that the bucket is there and the credentials work.

        Without it a missing bucket would read as "no such artifact" (HEAD on a key
        of a missing bucket answers a bare 404).
        """
        if not self._checked:
            self.check()

    def check(self) -> None:
        """Ask the bucket now (``HEAD`` on it): a missing bucket, refused credentials or an
        unreachable endpoint raise the error that names the fix."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES | {"NoSuchBucket"}:
                raise self._no_bucket() from exc
            raise self._fail(exc, f"checking bucket {self.bucket!r}") from exc
        except BotoCoreError as exc:
            raise self._fail(exc, f"checking bucket {self.bucket!r}") from exc
        self._checked = True

    @contextmanager
    def _translated(self, doing: str, name: str | None = None) -> Iterator[None]:
        """Check the bucket once, then turn boto3's errors into aimass's: a missing
        ``name`` into :class:`NotFound`, any other failure by :meth:`_fail`."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        self._check()
        try:
            yield
        except ClientError as exc:
            if name is not None and _code(exc) in _MISSING_CODES:
                raise NotFound(
                    f"object {name!r} is missing from {self.describe()}", object=name
                ) from exc
            raise self._fail(exc, doing) from exc
        # The transfer manager wraps the S3 error of an upload in its own.
        except (BotoCoreError, S3UploadFailedError) as exc:
            raise self._fail(exc, doing) from exc

    def put_file(self, path: Path, name: str) -> None:
        """Upload ``path`` as ``name`` (multipart for large files)."""
        with self._translated(f"uploading {name}"):
            self._client.upload_file(str(path), self.bucket, self._name(name))

    def put_bytes(self, data: bytes, name: str) -> None:
        """Write ``data`` as ``name``."""
        with self._translated(f"writing {name}"):
            self._client.put_object(Bucket=self.bucket, Key=self._name(name), Body=data)

    def get_file(self, name: str, path: Path) -> None:
        """Download ``name`` to ``path``; :class:`NotFound` when it is missing."""
        with self._translated(f"downloading {name}", name):
            self._client.download_file(self.bucket, self._name(name), str(path))

    def get_bytes(self, name: str) -> bytes | None:
        """The content of ``name``, or ``None`` when it is missing."""
        try:
            with self._translated(f"reading {name}", name):
                response = self._client.get_object(Bucket=self.bucket, Key=self._name(name))
                body: bytes = response["Body"].read()
        except NotFound:
            return None
        return body

    def exists(self, name: str) -> bool:
        """Whether ``name`` exists (a HEAD request)."""
        try:
            with self._translated(f"looking for {name}", name):
                self._client.head_object(Bucket=self.bucket, Key=self._name(name))
        except NotFound:
            return False
        return True

    def stat(self, name: str) -> ObjectStat | None:
        """Size and last write of ``name``, from a HEAD request (``None`` when missing)."""
        try:
            with self._translated(f"looking for {name}", name):
                head = self._client.head_object(Bucket=self.bucket, Key=self._name(name))
        except NotFound:
            return None
        return ObjectStat(int(head["ContentLength"]), float(head["LastModified"].timestamp()))

    def list(self, prefix: str) -> list[str]:
        """Names (relative to this store's prefix) that start with ``prefix``."""
        full = self._name(prefix)
        strip = len(self._name(""))
        names: list[str] = []
        with self._translated(f"listing {prefix}"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                names.extend(item["Key"][strip:] for item in page.get("Contents", []))
        return sorted(names)

    def delete(self, name: str) -> None:
        """Remove ``name`` (S3 deletes are idempotent)."""
        with self._translated(f"deleting {name}"):
            self._client.delete_object(Bucket=self.bucket, Key=self._name(name))


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
