"""The errors selo raises for user mistakes.

Every error a user can cause derives from :class:`SeloError` and also from the
built-in exception callers would expect (``FileNotFoundError``, ``ValueError``,
...). Each class says what it becomes: ``exit_code`` on the command line (which
prints it as one line) and ``http_status`` in an answer of ``selo serve``. Anything
else is an internal error (exit code 1, HTTP 500 with an id the server's log shows).
This module imports nothing else of selo, so every layer may use it.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import TypeVar

__all__ = [
    "SeloError",
    "InputNotFoundError",
    "SceneError",
    "AnnotationError",
    "MapError",
    "ParameterError",
    "ModelError",
    "CheckpointError",
    "MissingDependencyError",
    "OutputError",
    "ClusterError",
    "CacheError",
    "RemoteError",
    "RunFolderError",
    "RunMismatchError",
    "UnknownIdError",
    "SceneNotReadyError",
    "RequestTooLargeError",
    "CollectionError",
    "portable_errors",
]

F = TypeVar("F", bound=Callable)


class SeloError(Exception):
    """Base class of the errors a user can cause and fix."""

    exit_code = 2  # the command line's exit code
    http_status = 400  # the status of selo serve's answer


class InputNotFoundError(SeloError, FileNotFoundError):
    """A file or folder the command needs does not exist."""

    def __str__(self) -> str:  # FileNotFoundError formats (errno, msg) pairs
        return self.args[0] if self.args else ""


class SceneError(SeloError, ValueError):
    """A scene raster cannot be read or used (format, size, bands, nodata)."""


class AnnotationError(SeloError, ValueError):
    """An annotation file or one of its cases/polygons is malformed."""


class MapError(SeloError, ValueError):
    """A SeLo map is missing, unreadable, or of the wrong shape or dtype."""


class ParameterError(SeloError, ValueError):
    """A command-line option or function argument has an unusable value."""

    http_status = 422


class ModelError(SeloError, ValueError):
    """An encoder cannot be built: unknown name, bad spec, unusable weights."""


class CheckpointError(ModelError):
    """A checkpoint file is missing, unsafe, or does not fit the architecture."""


class MissingDependencyError(SeloError, ImportError):
    """An optional dependency is not installed; the message says what to install."""


class OutputError(SeloError, OSError):
    """An output location cannot be written (not a folder, not writable, disk full)."""

    def __str__(self) -> str:  # OSError formats (errno, msg) pairs
        return self.args[0] if self.args else ""


class ClusterError(SeloError, ConnectionError):
    """A Dask cluster cannot be created or reached."""

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


class CacheError(SeloError, OSError):
    """An embedding cache cannot be opened or is damaged."""

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


class RemoteError(SeloError, OSError):
    """A URL cannot be read: the server is unreachable or stalls, access is denied, or
    the object is not what it was when selo opened it."""

    http_status = 502  # selo serve could not get the scene's bytes from their server

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


class RunFolderError(SeloError, ValueError):
    """A folder is not a finished run: run.json or metrics.csv is missing or malformed."""


class RunMismatchError(SeloError, ValueError):
    """Runs to compare did not score the same cases (or used other annotations)."""


class UnknownIdError(SeloError, LookupError):
    """A scene, map or tile that ``selo serve`` does not have."""

    http_status = 404


class SceneNotReadyError(SeloError, RuntimeError):
    """A scene ``selo serve`` is still embedding (or whose embedding failed)."""

    http_status = 409


class RequestTooLargeError(SeloError, ValueError):
    """A request to ``selo serve`` whose body is larger than it reads."""

    http_status = 413


class CollectionError(SeloError, ValueError):
    """Scenes cannot be searched together: none given, some unusable, duplicated, or
    embedded by different encoders."""


def portable_errors(function: F) -> F:
    """Wrap a function that runs as a Dask task so that a SeloError it raises reaches
    the caller as itself, wherever the task ran.

    distributed pickles a task's exception with its whole chain of causes, and
    replaces it with a plain ``Exception`` when any link cannot be unpickled (GDAL's
    errors cannot): the user would get an internal error instead of the one-line
    message. The error is raised again as a copy without its chain; the original
    traceback travels as a note, which ``--debug`` shows.
    """

    @functools.wraps(function)
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except SeloError as e:
            error = type(e).__new__(type(e), *e.args)
            error.args = e.args
            error.__dict__.update(e.__dict__)
            error.add_note("".join(traceback.format_exception(e)).rstrip())
        raise error

    return run  # type: ignore[return-value]
