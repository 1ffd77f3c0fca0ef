"""Fetch a data set's four files into its data directory: mirrors in order, verified, cached.

Each file is streamed to a temporary file beside its final name, checked against the MD5 its
record publishes (:func:`scratchlr.dataset.splits.read_verified`), and only then renamed into
place, so an interrupted or bad download never leaves a partial or corrupt file under the
real name. The public mirrors are the record's.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import __version__
from ..files.atomic import replacing
from . import splits, store
from .records import ALL_FILES, DATASETS, GZ_FILE, Dataset

if TYPE_CHECKING:
    import requests  # imported where used: it costs ~0.1 s, and warm runs fetch nothing

MIRROR_ENV = "SCRATCHLR_MIRROR"  # comma-separated mirrors tried before the built-in ones
BUILTIN_ENV = "SCRATCHLR_BUILTIN_MIRRORS"  # replaces the record's public mirrors ("" = none)
HINT = f"use --mirror URL or ${MIRROR_ENV} for a reachable copy, or --data-dir for a local one"
READ_ONLY_HINT = "copy the four files into a folder you can write, and give it as --data-dir"


class DownloadError(RuntimeError):
    """No mirror supplied a verified copy of a file. One line: file, mirrors, last errors."""


class NotFound(Exception):
    """The mirror has no such file (HTTP 404/410, or no such local path)."""


class MirrorFailed(Exception):
    """The mirror failed for this file; the message is the last error. ``unreachable``:
    no connection could be made at all (offline, or the host is gone)."""

    def __init__(self, reason: str, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.unreachable = unreachable


@dataclass(frozen=True)
class Settings:
    """How hard to try: (connect, read) timeouts in s, retries per mirror on connection
    errors and 5xx with exponential backoff (s); and ``progress``, the caller's factory of
    a file's bar (:class:`scratchlr.progress.ProgressBar`'s arguments), or None for none."""

    timeout: tuple[float, float] = (10.0, 60.0)
    retries: int = 2
    backoff: float = 1.0
    progress: Callable[..., Any] | None = None


def mirrors(dataset: Dataset, explicit: Sequence[str] | None = None) -> list[str]:
    """Mirrors in the order tried: ``explicit`` (else ``$SCRATCHLR_MIRROR``), then the data
    set's public ones (else ``$SCRATCHLR_BUILTIN_MIRRORS``). ``DownloadError`` names one whose
    scheme is not http, https or file (or none: a folder)."""
    first = list(explicit or []) or os.environ.get(MIRROR_ENV, "").split(",")
    builtin = os.environ.get(BUILTIN_ENV)
    rest = list(dataset.mirrors) if builtin is None else builtin.split(",")
    found = [m.strip() for m in first + rest if m.strip()]
    for mirror in found:
        try:
            check_mirror(mirror)
        except ValueError as exc:
            raise DownloadError(str(exc)) from None
    return found


def check_mirror(mirror: str) -> str:
    """``mirror`` itself, or ``ValueError`` if its scheme is not http, https or file (or none:
    a folder)."""
    scheme = urllib.parse.urlparse(mirror).scheme
    drive = len(scheme) == 1  # one letter: a Windows drive
    if scheme not in ("http", "https", "file", "") and not drive:
        raise ValueError(
            f"mirror {mirror}: the scheme '{scheme}' is not supported "
            "(use http://, https://, file:// or a folder)"
        )
    return mirror


def session() -> requests.Session:
    """An HTTP session naming the project; proxies come from the standard variables."""
    import requests

    s = requests.Session()
    s.headers["User-Agent"] = f"scratchlr/{__version__} (+IDX downloader; python-requests)"
    return s


def local_path(mirror: str) -> Path | None:
    """The folder of a ``file://`` URL or plain path mirror; None for http(s)."""
    parsed = urllib.parse.urlparse(mirror)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    return Path(mirror)


def http_get(
    http: requests.Session, url: str, out: BinaryIO, settings: Settings, name: str
) -> None:
    """Stream ``url`` into ``out``, retrying connection errors and 5xx with backoff."""
    import requests

    last = ""
    unreachable = False
    for attempt in range(settings.retries + 1):
        if attempt:
            time.sleep(settings.backoff * 2 ** (attempt - 1))
        out.seek(0)
        out.truncate()
        try:
            with http.get(url, stream=True, timeout=settings.timeout) as r:
                if r.status_code in (404, 410):
                    raise NotFound(f"HTTP {r.status_code}")
                if r.status_code >= 500:
                    last = f"HTTP {r.status_code} {r.reason}"
                    unreachable = False
                    continue
                if r.status_code != 200:
                    raise MirrorFailed(f"HTTP {r.status_code} {r.reason}")
                size = int(r.headers.get("Content-Length") or 0) or None
                bar = None
                if settings.progress is not None:  # the caller's bar of this file's bytes
                    bar = settings.progress(size, name, unit="B", unit_scale=True)
                try:
                    for chunk in r.iter_content(1 << 16):
                        out.write(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                finally:
                    if bar is not None:
                        bar.close()
                return
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            last = describe(exc)
            unreachable = not isinstance(exc, requests.Timeout) and any(
                text in str(exc)
                for text in ("NameResolution", "Failed to establish", "Failed to resolve")
            )
    raise MirrorFailed(last, unreachable)


def describe(exc: Exception) -> str:
    """A short, one-line reason for a requests exception."""
    import requests

    if isinstance(exc, requests.Timeout):
        return "timed out"
    errno = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
    reason = errno.group(0) if errno else (str(exc).splitlines() or [""])[0][:160]
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


def fetch_from(
    mirror: str,
    dataset: Dataset,
    key: str,
    directory: Path,
    http: requests.Session,
    settings: Settings,
) -> Path:
    """Fetch the record's file ``key`` from one mirror (its ``.gz`` name, else uncompressed
    where the MD5 is of the payload), verify it and rename it into ``directory``. Raises
    ``NotFound`` or ``MirrorFailed``."""
    f = dataset.files[key]
    names = (f.name,) if f.md5_of == GZ_FILE else (f.name, f.plain_name)
    for name in names:
        final = directory / name
        try:
            # renamed into place only if the block ends without an error
            with replacing(final) as tmp:
                transfer(mirror, name, tmp, http, settings)
                try:
                    array = splits.read_verified(tmp, dataset, key, label=name)
                except splits.DataError as exc:
                    raise MirrorFailed(f"rejected: {exc}") from None
        except NotFound:
            continue
        splits.remember(final, f, array)  # stamp it and cache the array: no second decompression
        return final
    raise NotFound("not found")


def transfer(
    mirror: str, name: str, target: Path, http: requests.Session, settings: Settings
) -> None:
    """Copy the mirror's file ``name`` into the file ``target``. Raises ``NotFound`` or
    ``MirrorFailed``."""
    source = local_path(mirror)
    try:
        with open(target, "wb") as out:
            if source is None:
                url = urllib.parse.urljoin(mirror.rstrip("/") + "/", name)
                http_get(http, url, out, settings, name)
            elif (source / name).is_file():
                with open(source / name, "rb") as src:
                    shutil.copyfileobj(src, out)
            else:
                raise NotFound("no such file")
    except OSError as exc:
        raise MirrorFailed(f"{type(exc).__name__}: {exc}") from None


def fetch(
    dataset: Dataset,
    key: str,
    directory: Path,
    tried: list[str],
    http: requests.Session,
    settings: Settings,
) -> Path:
    """Try each mirror in ``tried`` in turn for the record's file ``key``; the first verified
    copy wins."""
    what = f"{dataset.title}'s {dataset.files[key].name}"
    failures: list[tuple[str, Exception]] = []
    for mirror in tried:
        try:
            return fetch_from(mirror, dataset, key, directory, http, settings)
        except (NotFound, MirrorFailed) as exc:
            failures.append((mirror, exc))
    if not failures:
        raise DownloadError(f"{what} is not in {directory} and no mirror is configured; {HINT}")
    detail = "; ".join(f"{m} ({e})" for m, e in failures)
    if all(isinstance(e, MirrorFailed) and e.unreachable for _, e in failures):
        raise DownloadError(
            f"offline: no mirror could be reached and {directory} has no copy of {what} "
            f"(tried {detail}); {HINT}"
        )
    raise DownloadError(f"could not fetch {what} into {directory}: tried {detail}; {HINT}")


def ensure(
    dataset: Dataset,
    directory: Path,
    tried: Sequence[str],
    settings: Settings = Settings(),
    keys: Sequence[str] = ALL_FILES,
) -> list[str]:
    """Make ``directory`` hold the verified files ``keys`` of ``dataset`` (default: all four),
    fetching only what is missing or bad; no other file is opened. Returns the names fetched.
    Raises ``DownloadError`` (one line), or ``DataError`` if ``directory`` is a file. A
    failure leaves no folder this call made, nor its lock."""
    splits.check_folder(dataset, directory)
    problems = {key: cached(directory, dataset, key) for key in keys}
    if all(p is None for p in problems.values()):
        return []
    if directory.is_dir() and not store.writable(directory):
        missing = ", ".join(dataset.files[k].name for k, p in problems.items() if p is not None)
        raise DownloadError(f"{directory} is read-only and lacks {missing}; {READ_ONLY_HINT}")
    made = [p for p in (directory, *directory.parents) if not p.exists()]  # deepest first
    lock_was_there = (directory / store.LOCK).exists()
    fetched = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with store.locked(directory), session() as http:
            try:
                for key, problem in problems.items():
                    # None: good already; or another process may have fetched it meanwhile
                    if problem is None or cached(directory, dataset, key) is None:
                        continue
                    try:
                        path = fetch(dataset, key, directory, list(tried), http, settings)
                    except DownloadError as exc:
                        raise DownloadError(f"{problem}; {exc}" if problem else str(exc)) from None
                    fetched.append(path.name)
            except BaseException:  # a failed fetch, or Ctrl-C: leave nothing this call made
                if not lock_was_there:  # removed while holding it (see store.locked)
                    (directory / store.LOCK).unlink(missing_ok=True)
                remove_if_empty(made)
                raise
    except OSError as exc:
        remove_if_empty(made)
        raise DownloadError(f"cannot write to {directory}: {exc.strerror or exc}; {HINT}") from None
    return fetched


def remove_if_empty(made: list[Path]) -> None:
    """Remove the folders a failed first download made (deepest first), where nothing is in
    them."""
    for folder in made:
        with contextlib.suppress(OSError):
            folder.rmdir()


def fetch_missing(
    dataset: Dataset,
    data_dir: str | None = None,
    explicit_mirrors: Sequence[str] | None = None,
    progress: Callable[..., Any] | None = None,
    keys: Sequence[str] = ALL_FILES,
) -> list[str]:
    """Make the data set's folder (:func:`scratchlr.dataset.splits.data_dir` of ``data_dir``)
    hold its verified files ``keys`` (all four by default), fetching what is missing from
    :func:`mirrors` (``explicit_mirrors`` first), with a bar per file from ``progress``
    (:class:`Settings`). Returns the names fetched; raises ``DownloadError``, or
    ``DataError`` for a file."""
    directory = splits.data_dir(dataset, data_dir)
    tried = mirrors(dataset, explicit_mirrors)
    return ensure(dataset, directory, tried, Settings(progress=progress), keys)


def another_data_set(path: Path, dataset: Dataset, key: str) -> Dataset | None:
    """The other data set whose verified file ``key`` ``path`` is, if one is: the three share
    their file names, so a folder of one given for another holds good files, not bad ones."""
    for other in DATASETS.values():
        if other.name == dataset.name or key not in other.files:
            continue
        try:
            splits.read_verified(path, other, key)
        except splits.DataError:
            continue
        return other
    return None


def cached(directory: Path, dataset: Dataset, key: str) -> str | None:
    """None if ``directory`` holds a good copy of the record's file ``key``; "" if it holds
    none; else why its copy was bad. A bad copy is deleted: in a cache, a corrupt file must
    not stay under the real name (in a read-only folder, that is a ``DownloadError`` instead).
    A good file of another data set, or an uncompressed copy that the record's MD5 (of the
    ``.gz`` file) cannot verify, is no bad copy: it is left as it is, with a ``DownloadError``."""
    f = dataset.files[key]
    path = splits.find(directory, f)
    if path is None:
        return ""
    if store.is_stamped(path, f.md5):
        return None
    try:
        # verifies, stamps, and writes the .npy cache for the loader
        splits.cached_array(path, dataset, key)
        return None
    except splits.DataError as exc:
        other = another_data_set(path, dataset, key)
        if other is not None:
            raise DownloadError(
                f"{path} is {other.title}'s file, not {dataset.title}'s: give {dataset.title}'s "
                f"own folder with --data-dir (or --dataset {other.name})"
            ) from None
        if f.md5_of == GZ_FILE and path.name != f.name:  # uncompressed: nothing to verify it by
            raise DownloadError(str(exc)) from None
        if not store.writable(directory):
            raise DownloadError(f"{exc}, in a read-only folder; {READ_ONLY_HINT}") from None
        path.unlink()
        return f"removed bad cached file {exc}"
