"""Servers the tests start on 127.0.0.1 (never anything beyond this machine).

- :class:`RangeServer`: a folder over HTTP with Range requests, ETag / Last-Modified,
  index pages (so fsspec can list a prefix), 403 under ``forbidden/``, and a record of
  every request and the body bytes it was sent;
- :class:`S3Server`: moto's S3-compatible server (its ``ThreadedMotoServer``'s app) on a
  free port, counting the body bytes of its answers the same way;

Both run in a child process (``python tests/servers.py http ROOT`` / ``... s3``), as a
real server does: a server thread inside the test process would stall whenever GDAL reads
a URL while holding the GIL (e.g. the JPEG driver looking for a mask at the file's end
when rasterio asks for mask flags), until the read timed out. The parent asks the child
for its record of requests, or to reset it, at ``/__selo__/requests`` and
``/__selo__/reset`` (not recorded).
- :class:`StallServer`: accepts connections and never answers;
- :func:`closed_port`: a port nothing listens on (held bound, so nothing else takes it).

tests/conftest.py makes fixtures of them (``http_server``, ``s3_bucket``, ...);
benchmarks/bench_remote.py uses them too.
"""

from __future__ import annotations

import email.utils
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_CONTROL = "/__selo__/"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    first: int | None  # byte range sent (inclusive), None for a whole body or none
    last: int | None
    sent: int  # body bytes sent
    status: int


class _Record:
    """Requests served and body bytes sent (in the server process), thread-safe; answers
    the parent's control requests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.listing = True
        self.stall_from: int | None = None  # ranges starting here or later get no answer

    def add(self, request: Request) -> None:
        with self.lock:
            self.requests.append(asdict(request))

    def control(self, path: str) -> bytes:
        command = path[len(_CONTROL) :].split("?", 1)[0]
        with self.lock:
            if command == "reset":
                self.requests.clear()
            elif command.startswith("listing-"):
                self.listing = command == "listing-on"
            elif command.startswith("stall-from-"):
                self.stall_from = int(command.removeprefix("stall-from-"))
            return json.dumps(self.requests).encode()


# --- HTTP ----------------------------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as GDAL and aiohttp use it
    server: _HTTPServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        record = self.server.record
        if self.path.startswith(_CONTROL):
            return self._reply(200, record.control(self.path), "application/json", count=False)
        path = self.translate_path(self.path)
        if self.path.split("?", 1)[0].lstrip("/").startswith("forbidden/"):
            return self._reply(403, b"forbidden")
        if os.path.isdir(path):
            if not record.listing:
                return self._reply(404, b"no index pages here")
            links = "".join(f'<a href="{n}">{n}</a>\n' for n in sorted(os.listdir(path)))
            return self._reply(200, f"<html><body>\n{links}</body></html>\n".encode(), "text/html")
        try:
            stat = os.stat(path)
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError:
            return self._reply(404, b"not found")
        with f:
            self._file(f, stat, path, body)

    def _file(self, f, stat, path: str, body: bool) -> None:
        size = stat.st_size
        first, last, status = 0, size - 1, 200
        match = _RANGE.match(self.headers.get("Range", "").strip())
        if match and size:
            a, b = match.groups()
            if a:
                first, last = int(a), min(int(b) if b else size - 1, size - 1)
            else:  # the last N bytes
                first, last = max(0, size - int(b)), size - 1
            if first > last:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return self._add(416, 0, first, last)
            status = 206
            stall = self.server.record.stall_from
            if stall is not None and first >= stall:  # a server that stops answering
                threading.Event().wait()
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Length", str(last - first + 1 if size else 0))
        self.send_header("ETag", f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"')
        self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        sent = 0
        if body and size:
            f.seek(first)
            left = last - first + 1
            while left:
                piece = f.read(min(left, 1 << 16))
                if not piece:
                    break
                try:
                    self.wfile.write(piece)
                except OSError:
                    break
                sent += len(piece)
                left -= len(piece)
        ranged = status == 206
        self._add(status, sent, first if ranged else None, last if ranged else None)

    def _reply(self, code: int, data: bytes, kind: str = "text/plain", *, count=True) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        body = self.command != "HEAD"
        if body:
            self.wfile.write(data)
        if count:
            self._add(code, len(data) if body and code == 200 else 0, None, None)

    def _add(self, status: int, sent: int, first, last) -> None:
        self.server.record.add(Request(self.command, self.path, first, last, sent, status))


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    record: _Record


def _serve_http(root: str) -> None:
    server = _HTTPServer(("127.0.0.1", 0), lambda *a, **kw: _Handler(*a, directory=root, **kw))
    server.record = _Record()
    print(server.server_address[1], flush=True)
    server.serve_forever()


# --- S3 ------------------------------------------------------------------------------------------


class _CountingApp:
    """A WSGI middleware recording each answer's body bytes, and answering control paths."""

    def __init__(self, app, record: _Record) -> None:
        self.app, self.record = app, record

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(_CONTROL):
            data = self.record.control(path)
            start_response("200 OK", [("Content-Length", str(len(data)))])
            return [data]
        return self._counted(environ, start_response, path)

    def _counted(self, environ, start_response, path):
        seen = {}

        def start(status, headers, exc_info=None):
            seen["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        sent = 0
        for chunk in self.app(environ, start):
            sent += len(chunk)
            yield chunk
        match = _RANGE.match(environ.get("HTTP_RANGE", "").strip())
        first = int(match.group(1)) if match and match.group(1) else None
        last = int(match.group(2)) if match and match.group(2) else None
        request = Request(environ["REQUEST_METHOD"], path, first, last, sent, seen.get("status", 0))
        self.record.add(request)


def _serve_s3() -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class Quiet(MotoRequestHandler):
        def log(self, *args, **kwargs) -> None:  # no request lines on stderr
            pass

    app = _CountingApp(DomainDispatcherApplication(create_backend_app), _Record())
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    print(server.server_address[1], flush=True)
    server.serve_forever()


# --- the parent's side ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float) -> bool:
    """Whether a server accepts connections on 127.0.0.1:``port`` within ``seconds``, while
    ``process`` (the server's) still runs."""
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen) -> None:
    """Ends a server process: asked to, then killed if it is still there after 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _ServerProcess:
    """A server of this module in a child process; the requests it recorded."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self._args = [sys.executable, __file__, *args]
        self._env = {**os.environ, **(env or {})}
        self._process: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self):
        self._process = subprocess.Popen(
            self._args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self._env
        )
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            self._process.kill()
            raise RuntimeError(f"the test server did not start: {self._args}")
        self.port = int(line)
        return self

    def __exit__(self, *exc) -> None:
        _stop(self._process)
        self._process.stdout.close()

    def _control(self, command: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}{_CONTROL}{command}"
        with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - 127.0.0.1 only
            return json.loads(answer.read())

    @property
    def requests(self) -> list[Request]:
        return [Request(**r) for r in self._control("requests")]

    def reset(self) -> None:
        self._control("reset")

    def bytes_sent(self, path: str | None = None) -> int:
        """Body bytes sent (for paths ending with ``path`` when given)."""
        return sum(r.sent for r in self.requests if path is None or r.path.endswith(path))


class RangeServer(_ServerProcess):
    """The files under ``root`` at ``http://127.0.0.1:PORT/`` (see the module)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        super().__init__("http", str(self.root))

    def url(self, name: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    @property
    def listing(self) -> bool:
        raise AttributeError("write-only")

    @listing.setter
    def listing(self, on: bool) -> None:
        """Whether folders have index pages (False: 404, as many servers answer)."""
        self._control("listing-on" if on else "listing-off")

    def stall_from(self, offset: int) -> None:
        """From now on, never answer a range request starting at ``offset`` or later."""
        self._control(f"stall-from-{offset}")


class S3Server(_ServerProcess):
    """moto's S3 server on ``127.0.0.1`` and a free port, counting answer bytes; with
    ``auth`` it checks every request's credentials (moto knows none: all are wrong)."""

    def __init__(self, *, auth: bool = False) -> None:
        super().__init__("s3", env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if auth else None)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class StallServer:
    """Accepts TCP connections on 127.0.0.1 and never answers (until stopped)."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    def url(self, name: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def _accept(self) -> None:
        self._socket.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except (TimeoutError, OSError):
                continue
            self._held.append(conn)

    def __enter__(self) -> StallServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self._held:
            conn.close()
        self._socket.close()


class closed_port:  # noqa: N801 - used like a function in a with statement
    """A 127.0.0.1 port bound by nobody listening: connections are refused at once."""

    def __enter__(self) -> int:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        return self._socket.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self._socket.close()


if __name__ == "__main__":
    if sys.argv[1] == "http":
        _serve_http(sys.argv[2])
    else:
        _serve_s3()


AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (  # Azurite's documented development key, not a secret
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class AzuriteServer:
    """Azurite's Blob service (Microsoft's Azure Storage emulator, from npm; ``.ci/run``
    installs it) on 127.0.0.1, its data in ``folder``; ``connection_string`` is what
    ``AZURE_STORAGE_CONNECTION_STRING`` takes."""

    def __init__(self, executable: str, folder: Path) -> None:
        self._executable, self._folder = executable, Path(folder)
        self._process: subprocess.Popen | None = None
        self.port = 0

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT};"
        )

    def __enter__(self):
        self.port = free_port()
        self._process = subprocess.Popen(
            [self._executable, "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
             "--location", str(self._folder), "--skipApiVersionCheck", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if not wait_for_port(self.port, self._process, 30):  # node takes a few seconds
            _stop(self._process)
            raise RuntimeError(f"Azurite did not start within 30 s: {self._executable}")
        return self

    def __exit__(self, *exc) -> None:
        _stop(self._process)
