"""Locations beyond the local disk: URLs, object stores and GDAL's virtual file systems.

A scene may be named by a local path, an ``http(s)://``, ``s3://``, ``gs://`` or
``az://`` URL, or a GDAL ``/vsi…/`` path, and a cache or an output folder by the URL of an
object store (:func:`object_store_url`; written through :mod:`selo.pipeline.store`). This
module is the one place that maps such a location, and the credentials and endpoints
of the standard environment, to what each library needs:

- **GDAL** (through rasterio) reads a URL through its virtual file system
  (:func:`gdal_path`: ``/vsicurl/``, ``/vsis3/``, ``/vsigs/``, ``/vsiaz/``), window by
  window with HTTP range requests, with the config options of :func:`gdal_options`;
- **fsspec** (s3fs, gcsfs, adlfs, its HTTP file system) stats an object (its size and
  version: ETag, Last-Modified, generation), lists a prefix and reads a few header bytes
  by range, with the storage options of :func:`storage_options`.

Credentials and endpoints come from the environment their own tools read:
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` /
``AWS_PROFILE`` / ``AWS_REGION`` (GDAL and botocore read them themselves),
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``: GDAL knows only ``AWS_S3_ENDPOINT``,
``AWS_HTTPS`` and ``AWS_VIRTUAL_HOSTING``, which are derived from it, path-style, unless
set), ``AWS_NO_SIGN_REQUEST``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``
and any GDAL config option. Nothing here changes ``os.environ``: GDAL's options are
applied inside selo's own calls (:func:`selo.pipeline.scenefile.gdal_env`).

Timeouts (never a hang): GDAL's ``GDAL_HTTP_CONNECTTIMEOUT`` (default here 10 s: a
reachable host accepts a connection in well under a second, even across a VPN) and
``GDAL_HTTP_LOW_SPEED_TIME`` (30 s: a request that receives nothing for that long is
abandoned; object stores send a range's first byte within a second or two, so this
only trips on a dead or stalled server, never on a slow but live link, which a total
timeout would) with ``GDAL_HTTP_LOW_SPEED_LIMIT`` 1 byte/s; ``GDAL_HTTP_MAX_RETRY`` 3
retries of 429/5xx answers, ``GDAL_HTTP_RETRY_DELAY`` 1 s. The same values, or the
user's own settings of these variables, bound fsspec's requests.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import (
    InputNotFoundError,
    MissingDependencyError,
    ParameterError,
    RemoteError,
    SceneError,
)

__all__ = [
    "ObjectInfo",
    "download",
    "filesystem",
    "gdal_options",
    "gdal_path",
    "is_network_message",
    "is_remote",
    "join",
    "list_names",
    "object_info",
    "object_store_url",
    "open_binary",
    "remote_error",
    "storage_options",
    "timeouts",
    "url_of",
]

# URL scheme -> GDAL virtual file system
_VSI = {
    "http": "/vsicurl/",
    "https": "/vsicurl/",
    "s3": "/vsis3/",
    "gs": "/vsigs/",
    "az": "/vsiaz/",
}
# GDAL virtual file system -> URL scheme (the ones fsspec can stat and list)
_SCHEME = {"/vsis3/": "s3://", "/vsigs/": "gs://", "/vsiaz/": "az://"}
_ARCHIVES = ("/vsizip/", "/vsitar/", "/vsigzip/")
_ARCHIVE_NAME = re.compile(r"\.(zip|tar|tgz|tar\.gz|gz)(?=/|$)", re.IGNORECASE)
_PACKAGES = {"s3": "s3fs", "gs": "gcsfs", "az": "adlfs", "http": "aiohttp", "https": "aiohttp"}

# GDAL's HTTP settings, unless the user set them (see the module)
DEFAULT_GDAL_OPTIONS = {
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_LOW_SPEED_TIME": "30",
    "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    # a scene is one object: listing its "directory" for side-car files costs a LIST
    # request on every open (and, on a large bucket, many)
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
}
_HEADER_BLOCK = 1 << 14  # bytes per range read of a header through fsspec


def is_remote(location: str | os.PathLike) -> bool:
    """Whether ``location`` is a URL or a GDAL ``/vsi…/`` path rather than a local path."""
    text = os.fspath(location)
    if isinstance(text, bytes):
        return False
    return text.startswith("/vsi") or _scheme(text) in _VSI


def _scheme(text: str) -> str | None:
    head, sep, _ = text.partition("://")
    return head.lower() if sep and head.isalnum() else None


def gdal_path(location: str) -> str:
    """What GDAL opens for ``location``: a local path as it is, a URL through its virtual
    file system (``s3://b/k`` -> ``/vsis3/b/k``, ``https://…`` -> ``/vsicurl/https://…``)."""
    scheme = _scheme(location)
    if scheme in ("http", "https"):
        return "/vsicurl/" + location
    if scheme in _VSI:
        return _VSI[scheme] + location.split("://", 1)[1]
    return location


def url_of(location: str) -> str | None:
    """The fsspec URL of a remote location (None for a local path or a GDAL path fsspec
    cannot follow, such as ``/vsimem/``): ``/vsis3/b/k`` -> ``s3://b/k``."""
    if _scheme(location) in _VSI:
        return location
    if location.startswith("/vsicurl/"):
        return location[len("/vsicurl/") :]
    for prefix, scheme in _SCHEME.items():
        if location.startswith(prefix):
            return scheme + location[len(prefix) :]
    return None


def object_store_url(location: str) -> str | None:
    """The URL of a location in an object store — ``s3://``, ``gs://``, ``az://`` or GDAL's
    ``/vsis3/``, ``/vsigs/``, ``/vsiaz/`` of one — where selo can also write caches and
    outputs (and GDAL read them back); None for anything else."""
    url = url_of(location) if isinstance(location, str) else None
    return url.rstrip("/") if url and _scheme(url) in _OBJECT_STORES else None


_OBJECT_STORES = ("s3", "gs", "az")


def join(prefix: str, name: str) -> str:
    """``name`` inside the folder or URL prefix ``prefix``."""
    if is_remote(prefix):
        return prefix.rstrip("/") + "/" + name
    return os.path.join(prefix, name)


# --- settings -------------------------------------------------------------------------------


def _number(name: str, kind=float):
    """A GDAL setting from the environment (or selo's default), as a number >= 0."""
    text = os.environ.get(name) or DEFAULT_GDAL_OPTIONS.get(name)
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        value = -1
    if not value >= 0:
        raise ParameterError(f"{name}={text!r}: not a number of seconds (or retries) >= 0")
    return value


def timeouts() -> tuple[float, float, float | None, int]:
    """``(connect, stalled, total or None, retries)`` in seconds, from GDAL's settings."""
    return (
        _number("GDAL_HTTP_CONNECTTIMEOUT"),
        _number("GDAL_HTTP_LOW_SPEED_TIME"),
        _number("GDAL_HTTP_TIMEOUT") or None,
        _number("GDAL_HTTP_MAX_RETRY", int),
    )


def _s3_endpoint() -> str | None:
    """``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (checked: a URL with a host)."""
    name = "AWS_ENDPOINT_URL_S3" if os.environ.get("AWS_ENDPOINT_URL_S3") else "AWS_ENDPOINT_URL"
    endpoint = os.environ.get(name)
    if not endpoint:
        return None
    try:
        parts = urlsplit(endpoint)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        ok = False
    if not ok:
        raise ParameterError(f"{name}={endpoint!r}: not an endpoint URL such as http://host:9000")
    return endpoint


def gdal_options() -> dict[str, str]:
    """GDAL config options for remote reads: selo's HTTP defaults (unless set in the
    environment) and the S3 endpoint of ``AWS_ENDPOINT_URL`` in GDAL's terms."""
    env = os.environ
    timeouts()  # the user's values must be numbers
    options = {k: v for k, v in DEFAULT_GDAL_OPTIONS.items() if k not in env}
    endpoint = _s3_endpoint()
    if endpoint and "AWS_S3_ENDPOINT" not in env:
        parts = urlsplit(endpoint)
        options["AWS_S3_ENDPOINT"] = parts.netloc + parts.path.rstrip("/")
        if "AWS_HTTPS" not in env:
            options["AWS_HTTPS"] = "NO" if parts.scheme == "http" else "YES"
        if "AWS_VIRTUAL_HOSTING" not in env:  # custom endpoints (MinIO, Ceph, moto) are path-style
            options["AWS_VIRTUAL_HOSTING"] = "FALSE"
    return options


def _yes(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("YES", "TRUE", "ON", "1")


def storage_options(url: str) -> dict:
    """fsspec storage options for ``url``, from the same environment as :func:`gdal_options`."""
    scheme = _scheme(url)
    connect, stalled, total, retries = timeouts()
    env = os.environ
    if scheme == "s3":
        options: dict = {
            "config_kwargs": {
                "connect_timeout": connect,
                "read_timeout": stalled,
                "retries": {"max_attempts": retries + 1, "mode": "standard"},
            }
        }
        if _s3_endpoint():
            options["endpoint_url"] = _s3_endpoint()
        if _yes("AWS_NO_SIGN_REQUEST"):
            options["anon"] = True
        return options
    if scheme in ("http", "https"):
        import aiohttp

        timeout = aiohttp.ClientTimeout(
            total=total, connect=connect, sock_connect=connect, sock_read=stalled
        )
        return {"client_kwargs": {"timeout": timeout}}
    if scheme == "az":
        names = {
            "account_name": "AZURE_STORAGE_ACCOUNT",
            "account_key": "AZURE_STORAGE_ACCESS_KEY",
            "connection_string": "AZURE_STORAGE_CONNECTION_STRING",
            "sas_token": "AZURE_STORAGE_SAS_TOKEN",
        }
        return {k: env[v] for k, v in names.items() if env.get(v)}
    if scheme == "gs" and env.get("GOOGLE_APPLICATION_CREDENTIALS"):
        return {"token": env["GOOGLE_APPLICATION_CREDENTIALS"]}
    return {}


def filesystem(url: str):
    """``(fsspec file system, path in it)`` for a URL, built with :func:`storage_options`."""
    import fsspec

    scheme = _scheme(url) or ""
    try:
        return fsspec.core.url_to_fs(url, **storage_options(url))
    except ImportError as e:
        package = _PACKAGES.get(scheme, "fsspec")
        raise MissingDependencyError(
            f"{url}: reading {scheme}:// locations needs {package} "
            f"(pip install {package}, or pip install 'selo[remote]')"
        ) from e


# --- objects --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectInfo:
    """What a location holds now: its size and a version string that changes when its
    content may have (a local file's size and modification time; an object's ETag,
    Last-Modified, generation and size)."""

    size: int | None
    version: str


_VERSION_FIELDS = (
    ("etag", ("ETag", "etag", "Etag")),
    ("modified", ("LastModified", "Last-Modified", "last_modified", "updated", "mtime")),
    ("generation", ("generation", "VersionId", "version_id")),
    ("md5", ("md5Hash", "Content-MD5", "content_md5")),
)


def object_info(location: str) -> ObjectInfo:
    """The size and version of a file or object; a missing one is an InputNotFoundError,
    an unreachable or forbidden one a RemoteError (both naming ``location``)."""
    if not is_remote(location):
        try:
            stat = os.stat(location)
        except FileNotFoundError:
            raise InputNotFoundError(f"{location}: scene not found; check the path") from None
        except OSError as e:
            raise SceneError(f"{location}: cannot read the file ({e.strerror})") from None
        return ObjectInfo(stat.st_size, f"size={stat.st_size};mtime_ns={stat.st_mtime_ns}")
    for prefix in _ARCHIVES:
        if location.startswith(prefix):
            archive, inner = _archive_parts(location[len(prefix) :])
            outer = object_info(archive)
            return ObjectInfo(None, f"{outer.version};member={inner}")
    url = url_of(location)
    if url is None:  # e.g. /vsimem/: nothing outside GDAL can see it
        return ObjectInfo(None, "")
    fs, path = filesystem(url)
    try:
        fs.invalidate_cache(path)  # a listing made earlier may hold an older version
        info = fs.info(path)
    except Exception as e:  # noqa: BLE001 - every failure of a remote stat, named in one line
        raise remote_error(location, e) from None
    if info.get("type") == "directory":
        raise SceneError(f"{location}: a folder or prefix, not a scene; name one object")
    parts = []
    for name, keys in _VERSION_FIELDS:
        value = next((info[k] for k in keys if info.get(k) not in (None, "")), None)
        if value is not None:
            parts.append(f"{name}={value}")
    size = info.get("size")
    parts.append(f"size={size}")
    return ObjectInfo(None if size is None else int(size), ";".join(parts))


def _archive_parts(rest: str) -> tuple[str, str]:
    """``(archive location, member)`` of what follows ``/vsizip/`` (or tar, gzip)."""
    match = _ARCHIVE_NAME.search(rest)
    if match is None:
        raise SceneError(f"{rest}: no .zip, .tar or .gz archive in this GDAL path")
    return rest[: match.end()], rest[match.end() :].lstrip("/")


def open_binary(location: str):
    """A binary file object of a local or remote file, reading remote ones by small range
    requests (for headers: a few kilobytes, never the whole object)."""
    if not is_remote(location):
        return open(location, "rb")  # noqa: SIM115 - the caller closes it
    url = url_of(location)
    if url is None:
        raise SceneError(
            f"{location}: selo cannot read this GDAL path's bytes itself; "
            "copy the file to a local path or a URL"
        )
    fs, path = filesystem(url)
    try:
        return fs.open(path, "rb", block_size=_HEADER_BLOCK, cache_type="none")
    except Exception as e:  # noqa: BLE001 - named in one line
        raise remote_error(location, e) from None


def download(location: str, target: os.PathLike) -> None:
    """Copy a remote file to the local path ``target`` (a JPEG or PNG scene, which is
    decoded whole anyway)."""
    url = url_of(location)
    if url is None:  # a GDAL path fsspec cannot follow: GDAL copies it
        import rasterio.shutil

        from .scenefile import gdal_env

        try:
            with gdal_env(location):
                rasterio.shutil.copyfiles(location, os.fspath(target))
        except Exception as e:  # noqa: BLE001 - named in one line
            raise SceneError(f"{location}: cannot be copied ({e})") from None
        return
    fs, path = filesystem(url)
    try:
        fs.get_file(path, os.fspath(target))
    except Exception as e:  # noqa: BLE001 - named in one line
        raise remote_error(location, e) from None


def list_names(prefix: str) -> list[str]:
    """The names of the objects directly under a URL prefix (a "folder")."""
    url = url_of(prefix)
    if url is None:
        raise SceneError(f"{prefix}: selo cannot list this GDAL path; name the scenes one by one")
    fs, path = filesystem(url)
    try:
        fs.invalidate_cache(path)
        entries = fs.ls(path, detail=True)
    except Exception as e:  # noqa: BLE001 - named in one line
        raise remote_error(prefix, e) from None
    return sorted(
        posixpath.basename(str(e["name"]).rstrip("/"))
        for e in entries
        if e.get("type", "file") == "file"
    )


def _reason(location: str, chain: list[BaseException]) -> str:
    """The server's or library's own words for a failure: an HTTP status and its phrase,
    else the first message of the chain that says more than the location."""
    for e in chain:
        status = getattr(e, "status", None)
        if isinstance(status, int) and status >= 400:
            phrase = getattr(e, "message", "") or ""
            return f"HTTP {status} {phrase}".strip()
    names = {location, url_of(location) or location, location.split("://", 1)[-1]}
    for e in chain:
        text = str(e).strip()
        if text and text not in names and not any(text == f"'{n}'" for n in names):
            return text if len(text) <= 200 else text[:197] + "..."
    return type(chain[0]).__name__


def is_network_message(location: str, message: str) -> bool:
    """Whether GDAL's words for a failed read of ``location`` say a request failed (the
    connection, a timeout, an HTTP error) rather than the data being damaged."""
    for name in (gdal_path(location), location, url_of(location) or location):
        message = message.replace(name, "")
    lowered = message.lower()
    return any(word in lowered for word in _NETWORK_WORDS)


_NETWORK_WORDS = (
    "http",
    "curl",
    "timed out",
    "timeout",
    "too slow",
    "connect",
    "ssl",
    "resolve host",
    "access denied",
    "signature",
    "credentials",
)


def remote_error(location: str, error: BaseException) -> InputNotFoundError | RemoteError:
    """The one-line error for a failed request to ``location``: not found, access denied,
    unreachable, too slow, or whatever the server said."""
    chain: list[BaseException] = []
    e: BaseException | None = error
    while e is not None and len(chain) < 16:
        chain.append(e)
        e = e.__cause__ or e.__context__
    status = next((getattr(x, "status", None) for x in chain if getattr(x, "status", None)), None)
    names = {type(x).__name__ for x in chain}
    reason = _reason(location, chain)
    _, stalled, _, _ = timeouts()
    if status in (401, 403) or any(isinstance(x, PermissionError) for x in chain):
        return RemoteError(
            f"{location}: access denied ({reason}); check the credentials "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, "
            "GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*)"
        )
    if any(isinstance(x, TimeoutError) for x in chain) or names & {
        "ServerTimeoutError",
        "SocketTimeoutError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
    }:
        return RemoteError(
            f"{location}: no answer from the server within {stalled:g} s ({reason}); "
            "GDAL_HTTP_LOW_SPEED_TIME and GDAL_HTTP_CONNECTTIMEOUT set the limits"
        )
    if names & {"ClientConnectorError", "EndpointConnectionError", "ConnectionRefusedError"} or (
        any(getattr(x, "errno", None) in (errno.ECONNREFUSED, errno.EHOSTUNREACH) for x in chain)
    ):
        return RemoteError(f"{location}: cannot reach the server ({reason}); check the URL")
    if status == 404 or any(isinstance(x, FileNotFoundError) for x in chain):
        what = "bucket and key" if _scheme(url_of(location) or "") in ("s3", "gs", "az") else "URL"
        return InputNotFoundError(f"{location}: not found ({reason}); check the {what}")
    return RemoteError(f"{location}: cannot be read ({reason})")
