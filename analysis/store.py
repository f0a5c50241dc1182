"""Where results live: a local folder, or a URI that pyarrow's filesystems understand (`s3://`, `gs://`, `file://`).

Every read and write of the results tables goes through these few functions, so the layout, the atomic writes and
the resume logic are the same on a laptop's disk and in a bucket. A location is a `Path` (or a plain path string)
or a URI string; `join` extends either kind. Query parameters of a URI (e.g.
`s3://bucket/prefix?endpoint_override=127.0.0.1:9000&scheme=http` for an S3-compatible server) are kept on every
location joined below it. Credentials never appear here: pyarrow reads them from the environment, the AWS config
files or the instance profile.

Writes are atomic on every store: a reader sees the previous file or the new one, never a part of one.
- Local and `file://` (and any store with a real rename): write a hidden temporary name (`.name.<pid>.tmp`, which
  every reader skips), then rename it over the destination.
- Object stores (S3, GCS): write the destination key directly. An object appears only when its upload completes:
  a single PUT replaces the object atomically, and so does a multipart upload at its final `CompleteMultipartUpload`;
  an upload cut off half-way leaves the previous object in place. A rename there would be a copy plus a delete, i.e.
  two requests with a window in between, so it would be less safe, not more.
Reads fetch a whole file and parse it from memory (`read_parsed`); on S3 pyarrow asks for the size first, so an
object replaced between that and the GET yields a prefix of the new version, which never parses and is read again.
"""

import os
import sys
import threading
import time
from contextlib import suppress
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pyarrow import fs as pafs

OBJECT_STORES = ("s3", "gcs")
"""pyarrow filesystem types without an atomic rename, where a single upload is the atomic unit."""


def is_uri(where) -> bool:
    """Whether `where` is a URI (`scheme://…`) rather than a local path."""
    return isinstance(where, str) and "://" in where


def join(where, *parts: str):
    """`where/part/…`: a `Path` for a local location, a URI (query kept at the end) for a URI."""
    if not is_uri(where):
        return Path(where, *parts)
    base, sep, query = where.partition("?")
    return "/".join([base.rstrip("/"), *parts]) + sep + query


def name(where) -> str:
    """The last component of a location, e.g. `trials.parquet`."""
    return urlsplit(where).path.rstrip("/").rsplit("/", 1)[-1] if is_uri(where) else Path(where).name


@lru_cache(maxsize=32)
def _filesystem(scheme: str, netloc: str, query: str) -> tuple[pafs.FileSystem, str]:
    """One filesystem per bucket and options (building an S3 client may ask the server for the bucket's region)."""
    return pafs.FileSystem.from_uri(urlunsplit((scheme, netloc, "", query, "")))


def resolve(where) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem holding `where` and the path inside it.

    Args:
        where (Path | str):
            A local path or a URI.

    Returns:
        tuple[pyarrow.fs.FileSystem, str]: the filesystem and the path to pass to it.
    """
    if not is_uri(where):
        return pafs.LocalFileSystem(), os.path.abspath(where)
    u = urlsplit(where)
    if u.scheme == "file":
        return pafs.LocalFileSystem(), u.path
    filesystem, root = _filesystem(u.scheme, u.netloc, u.query)
    inner = u.path.strip("/")
    return filesystem, (f"{root.rstrip('/')}/{inner}" if inner else root)


def exists(where) -> bool:
    """Whether a file (or folder) is at `where`."""
    filesystem, path = resolve(where)
    return filesystem.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(where) -> bytes:
    """A whole file (on S3: a HEAD for its size, then one GET; see `read_parsed`)."""
    filesystem, path = resolve(where)
    with filesystem.open_input_stream(path) as f:
        return f.readall()


class ResultsError(ValueError):
    """A results file that is there but cannot be used: damaged (it does not parse) or foreign (not the table
    expected). The message is one line naming the file and what to do; the command lines print it and exit 2."""


def _why(exc: BaseException) -> str:
    """pyarrow's reason a file does not parse, short: `Parquet magic bytes not found in footer`."""
    text = first_line(exc).removeprefix("Could not open Parquet input source '<Buffer>': ")
    return text.split(". ")[0].rstrip(".")


def read_parsed(where, parse, attempts: int = 5, remedy: str = "move it aside"):
    """`parse(read_bytes(where))`, read again if an object store handed over a mix of two versions.

    pyarrow reads an S3 object as a HEAD (its size) then a ranged GET: if the object is replaced in between, the
    bytes are a prefix of the new version, which never parses (a Parquet file ends with its footer, JSON with its
    closing brace). Such a read is retried; on a local disk the rename makes every read whole, so none is needed.
    Bytes that still do not parse then are a damaged file: `ResultsError` names it and says `remedy`. A file that
    cannot be read at all raises the store's `OSError`.
    """
    filesystem, _ = resolve(where)
    for attempt in range(attempts):
        data = None
        try:
            data = read_bytes(where)
            return parse(data)
        except FileNotFoundError:  # gone (deleted, or never written): reading again will not bring it back
            raise
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid and json.JSONDecodeError are ValueErrors
            if filesystem.type_name in OBJECT_STORES and attempt < attempts - 1:
                time.sleep(0.05 * (attempt + 1))
                continue
            if data is None:
                raise
            raise ResultsError(f"{where} is damaged ({_why(exc)}); {remedy}") from exc


def move(src, dst) -> None:
    """Rename a file (on object stores: a copy, then a delete of the original)."""
    filesystem, a = resolve(src)
    filesystem.move(a, resolve(dst)[1])


def write_bytes(data: bytes, where) -> None:
    """Write a file atomically (see the module docstring): hidden name then rename, or one upload on object stores."""
    filesystem, path = resolve(where)
    folder, _, base = path.rpartition("/")
    if filesystem.type_name in OBJECT_STORES:
        with filesystem.open_output_stream(path) as f:  # visible only once the upload completes, whole
            f.write(data)
        return
    filesystem.create_dir(folder, recursive=True)
    tmp = f"{folder}/.{base}.{os.getpid()}.tmp"
    try:
        with filesystem.open_output_stream(tmp) as f:
            f.write(data)
        filesystem.move(tmp, path)  # rename(2) locally: atomic, replaces the old file
    except BaseException:  # a full disk, a lost permission, an interrupt: no hidden half-file stays to fill the disk
        with suppress(OSError):
            filesystem.delete_file(tmp)
        raise


def listdir(where, suffix: str = "") -> list[str]:
    """Names of the visible files in the folder `where` ending in `suffix` (hidden `.`/`_` names skipped), sorted."""
    filesystem, path = resolve(where)
    infos = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    names = (i.base_name for i in infos if i.type == pafs.FileType.File)
    return sorted(n for n in names if n.endswith(suffix) and not n.startswith((".", "_")))


def remove_empty_folder(where) -> None:
    """Remove a local folder if it is empty (object stores have no folders; a folder with files stays)."""
    filesystem, path = resolve(where)
    if filesystem.type_name == "local":
        with suppress(OSError):
            os.rmdir(path)


def delete(where) -> None:
    """Remove one file (a missing file is not an error)."""
    filesystem, path = resolve(where)
    if filesystem.get_file_info(path).type != pafs.FileType.NotFound:
        filesystem.delete_file(path)


REMOTE_TIMEOUT = float(os.environ.get("CLAIMBENCH_STORE_TIMEOUT", "30"))
"""Seconds a remote store has to answer the first request of a command before it is given up as unreachable
(`CLAIMBENCH_STORE_TIMEOUT`, default 30)."""


def check_reachable(where, timeout: float | None = None) -> None:
    """Raise `OSError` when the remote store of `where` gives no answer within `timeout` seconds (default 30 s).

    pyarrow retries a store it cannot reach for many minutes without a word (GCS gives up after 15), inside a C++
    call that a Ctrl-C does not interrupt. So the first contact (building the client, one metadata request) runs in
    a daemon thread while the calling thread waits in short slices: a Ctrl-C stops the wait at once, and an
    unreachable store is named within `timeout`. A local path or `file://` returns at once.
    """
    if not is_uri(where) or urlsplit(where).scheme == "file":
        return
    timeout = REMOTE_TIMEOUT if timeout is None else timeout
    outcome: dict[str, BaseException | None] = {}

    def contact() -> None:
        try:
            filesystem, path = resolve(where)
            filesystem.get_file_info(path)
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = exc
        finally:
            _PENDING.discard(thread)

    thread = threading.Thread(target=contact, name="claimbench-store-probe", daemon=True)
    _PENDING.add(thread)  # not `is_alive()`: a Ctrl-C inside `join` can mark a running thread stopped (CPython 3.11)
    thread.start()
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        thread.join(0.1)
    if "error" not in outcome:
        raise OSError(f"no answer within {timeout:g} s (no network, or the store is unreachable)")
    if outcome["error"] is not None:
        raise outcome["error"]


_PENDING: set[threading.Thread] = set()


def exit_now_if_a_probe_hangs(code: int) -> None:
    """End the process with `code` at once if a `check_reachable` probe is still waiting on its store.

    pyarrow's S3 shutdown (run at exit) waits for requests in flight, so a process that gave up on a store that never
    answers would hang on its way out. Nothing else needs its exit handlers then: the probe runs before any result is
    written and before Ray starts. The command lines call this just before they exit.
    """
    if _PENDING:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def results_location(text: str):
    """A command-line `--results`: a URI stays a string, anything else becomes a `Path`."""
    return text if is_uri(text) else Path(text)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (pyarrow's S3 errors run over several lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


PROBE_BYTES = 1 << 20
"""What the start-up probe writes (1 MiB): a disk without room for a few trials' files fails before anything runs."""


def check_writable(where) -> None:
    """Write and delete a hidden probe file in `where`; raise `OSError` (or `ValueError`) naming why it cannot be written.

    Nothing already there is touched: the probe has its own hidden name, which every reader skips, and folders
    made for it are removed again, so a refused run leaves no trace.
    """
    filesystem, path = resolve(where)
    made = []
    if filesystem.type_name == "local":  # object stores have no folders to make
        folder = path
        while folder not in ("", "/") and filesystem.get_file_info(folder).type == pafs.FileType.NotFound:
            made.append(folder)
            folder = folder.rpartition("/")[0]
    probe = join(where, f".probe-{os.getpid()}")
    try:
        write_bytes(os.urandom(PROBE_BYTES), probe)  # real bytes: a disk with no room for a trial's files fails here
        delete(probe)
    finally:
        for folder in made:  # innermost first; rmdir(2) removes only an empty folder, never what another run wrote
            with suppress(OSError):
                os.rmdir(folder)
