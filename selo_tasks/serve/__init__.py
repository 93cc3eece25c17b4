"""``selo serve``: a local web page that answers each new sentence from the cached
embeddings of a scene or of a collection of scenes (or shows an ``airslt`` run folder's
cases).

:func:`serve` opens one scene and embeds it in the background (progress in the terminal
and the page), or embeds and indexes a collection (several scenes, folders, globs, URL
prefixes, STAC collections: what ``selo search`` takes) before it starts, and serves
:mod:`~selo.selo_tasks.serve.app` with uvicorn until Ctrl-C.
What is held and how it is bounded: :mod:`~selo.selo_tasks.serve.state`; the tiles:
:mod:`~selo.selo_tasks.serve.tiles`. Needs the ``serve`` extra (FastAPI, uvicorn).
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import webbrowser
from collections.abc import Callable, Sequence
from pathlib import Path

from ...errors import InputNotFoundError, MissingDependencyError, OutputError, ParameterError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAP_CACHE_MIB",
    "DEFAULT_PORT",
    "MIN_MAP_CACHE_MIB",
    "BackgroundServer",
    "allowed_hosts",
    "bind",
    "require_web",
    "serve",
]

ANY_HOST = ("0.0.0.0", "::", "")
DEFAULT_HOST = "127.0.0.1"  # this machine only
DEFAULT_PORT = 8765
DEFAULT_MAP_CACHE_MIB = 1024  # finished maps (and their cells) kept: 1 GiB
MIN_MAP_CACHE_MIB = 16


def require_web() -> None:
    """MissingDependencyError with the install line unless FastAPI, uvicorn and
    morecantile import."""
    try:
        import fastapi  # noqa: F401
        import morecantile  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(
            f"selo serve needs FastAPI and uvicorn ({e.name} is missing): pip install 'selo[serve]'"
        ) from None


def allowed_hosts(host: str) -> list[str] | None:
    """Host headers the app accepts: this machine's names, or any when bound to all."""
    if host in ANY_HOST:
        return None
    return sorted({"127.0.0.1", "localhost", "::1", "[::1]", host})


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 picks a free one. ``host``: a name or an
    address, IPv6 ones with or without brackets."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ParameterError(f"--port must be a whole number from 0 to 65535, got {port!r}")
    if not isinstance(host, str):
        raise ParameterError(f"--host must be a host name or address, got {host!r}")
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    family = socket.AF_INET6 if ":" in name else socket.AF_INET
    # proto IPPROTO_TCP: asyncio then sets TCP_NODELAY on every connection (with proto 0 it
    # does not, and Nagle's algorithm with delayed ACKs adds 40 ms to keep-alive requests)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((name, port))
    except OSError as e:
        sock.close()
        fix = "pass another --port" if e.errno in _PORT_ERRORS else "check --host"
        raise OutputError(f"cannot listen on {host}:{port} ({e.strerror or e}); {fix}") from None
    except (TypeError, ValueError):  # a NUL, or characters no host name has
        sock.close()
        raise ParameterError(f"--host must be a host name or address, got {host!r}") from None
    sock.listen(128)
    return sock


_PORT_ERRORS = (errno.EADDRINUSE, errno.EACCES)


def serve(
    targets: Sequence[str | Path],
    options,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    open_browser: bool = False,
    map_cache: int = DEFAULT_MAP_CACHE_MIB,
    anno: str | Path | None = None,
    images: str | Path | None = None,
    skip_bad: bool = False,
    index: str = "auto",
    report: Callable[[str], object] = print,
) -> None:
    """Serve one scene (embedded once, in the background), a collection (embedded and
    indexed first; ``skip_bad`` and ``index`` as for ``selo search``) or one ``airslt``
    run folder until interrupted; ``map_cache``: MiB of finished maps kept in memory.
    (The Python API's :func:`selo.serve`, which ``selo serve`` calls.)"""
    if (
        isinstance(map_cache, bool)
        or not isinstance(map_cache, int)
        or map_cache < MIN_MAP_CACHE_MIB
    ):
        raise ParameterError(
            f"--map-cache must be a whole number of MiB, at least {MIN_MAP_CACHE_MIB}, "
            f"got {map_cache!r}"
        )
    require_web()
    from ...pipeline.index import check_mode
    from ...pipeline.remote import is_remote
    from ..run_folder import is_run_folder
    from ..session import run_session
    from .state import ServeState

    cache_bytes = map_cache * 2**20
    paths = [os.fspath(t) for t in targets]
    if not paths:
        raise ParameterError("name at least one scene file or an airslt run folder")
    check_mode(index)
    run = len(paths) == 1 and is_run_folder(paths[0])
    one = len(paths) == 1 and not run and _one_scene(paths[0])
    if run or one:
        if not is_remote(paths[0]) and not os.path.exists(paths[0]):
            raise InputNotFoundError(f"{paths[0]}: not found")
        if skip_bad:
            raise ParameterError("--skip-bad goes with a collection (several scenes)")
    if not run and (anno is not None or images is not None):
        raise ParameterError("--anno and --images go with an airslt run folder")
    if run:
        _check_run_folder(paths[0])
    sock = bind(host, port)  # a port in use fails before any scene is opened
    try:
        if run:
            state = ServeState.for_run(
                paths[0],
                anno=anno,
                images=images,
                cache=options.make_cache(),
                cache_bytes=cache_bytes,
                report=report,
            )
            _run(state, sock, host, open_browser, report)
            return
        profile_html = options.profile_html(".", default=False)
        with run_session(options, one_scene=True, profile_html=profile_html) as ctx:
            if one:
                state = ServeState.for_scenes(ctx, paths, cache_bytes=cache_bytes, report=report)
                state.start_embedding()
            else:
                state = ServeState.for_collection(
                    ctx, paths, skip_bad=skip_bad, index=index, cache_bytes=cache_bytes,
                    report=report,
                )  # fmt: skip
            _run(state, sock, host, open_browser, report)
    finally:
        sock.close()


def _one_scene(target: str) -> bool:
    """Whether ``target`` names one scene itself (a file, a scene's URL, a STAC item), not
    a collection (a folder, a glob, a URL prefix, a STAC collection): the rule of
    :func:`~selo.pipeline.source.expand_sources`."""
    from urllib.parse import urlsplit

    from ...pipeline import stac
    from ...pipeline.remote import is_remote
    from ...pipeline.source import RASTER_SUFFIXES

    remote = is_remote(target)
    if remote and urlsplit(target).path.lower().endswith(RASTER_SUFFIXES):
        return True
    if not remote and not os.path.exists(target):
        return not any(c in target for c in "*?[")  # a missing file: said as such
    if not remote and os.path.isdir(target):
        return False
    if not stac.is_stac_location(target):
        return not remote  # a file is a scene; a URL without a raster's suffix, a prefix
    data = stac.read_json(target)
    return isinstance(data, dict) and data.get("type") == "Feature"  # one item


def _check_run_folder(path: str) -> None:
    """A ``selo search`` output folder is no run folder to serve: say what to do."""
    from ..run_folder import read_record

    if read_record(path).get("command") == "search":
        raise ParameterError(
            f"{path}: the output of selo search; serve its scenes (selo serve SCENES...) "
            "and open a hit's link (hits.html, or /#q=SENTENCE&hit=RANK)"
        )


def _run(state, sock: socket.socket, host: str, open_browser: bool, report) -> None:
    import uvicorn

    from .app import create_app

    shown = host.strip("[]") if host not in ANY_HOST else "127.0.0.1"
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    app = create_app(state, allowed_hosts=allowed_hosts(host))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    report(f"selo serve: {url}  ({len(state.scenes)} scene(s); Ctrl-C stops)")
    if state.collection is not None:
        report(f"a hit of selo search opens at {url}#q=SENTENCE&hit=RANK")
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down, then passes Ctrl-C on
        report("selo serve: stopped")
    finally:
        state.close()
        sock.close()


class BackgroundServer:
    """The app of a :class:`~selo.selo_tasks.serve.state.ServeState` served by uvicorn in a
    thread of this process (tests, benchmarks, notebooks); ``port=0`` picks a free port::

        with BackgroundServer(state) as server:
            print(server.url)
    """

    def __init__(self, state, *, host: str = "127.0.0.1", port: int = 0) -> None:
        require_web()
        import uvicorn

        from .app import create_app

        self.state = state
        self._socket = bind(host, port)
        name = f"[{host}]" if ":" in host else host
        self.url = f"http://{name}:{self._socket.getsockname()[1]}"
        app = create_app(state, allowed_hosts=allowed_hosts(host))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> BackgroundServer:
        import time

        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OutputError(f"the server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self._thread.join(30)
        self._socket.close()
