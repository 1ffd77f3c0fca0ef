"""The downloader against mirrors on 127.0.0.1 serving the real files (no internet)."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import damaged_copy
from mirror import Mirror, dropping, stalling

from scratchlr.dataset import download, splits, store
from scratchlr.dataset.records import DATASETS

ROOT = Path(__file__).resolve().parents[1]
FAST = download.Settings(timeout=(2.0, 0.5), retries=1, backoff=0.0)  # no bars
MNIST = DATASETS["mnist"]
NAMES = [f.name for f in MNIST.files.values()]


@pytest.fixture(scope="module")
def real_files(mnist_source: Path) -> dict[str, bytes]:
    return {f.name: splits.find(mnist_source, f).read_bytes() for f in MNIST.files.values()}


@pytest.fixture
def serve():
    mirrors = []

    def start(routes: dict[str, object]) -> Mirror:
        mirrors.append(Mirror(routes))
        return mirrors[-1]

    yield start
    for m in mirrors:
        m.close()


def cache_is_clean(directory: Path) -> bool:
    """Only verified files under canonical names, plus the cache's own bookkeeping
    (stamps, lock, decompressed .npy copies): no temporary or partial file."""
    extra = {store.STAMPS, store.LOCK} | {
        splits.npy_path(directory / f.name, f).name for f in MNIST.files.values()
    }
    return all(p.name in extra or p.name in NAMES for p in directory.iterdir())


def refused_url() -> str:
    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def test_clean_download_then_no_request_then_training_offline(
    serve, real_files, tmp_path: Path
) -> None:
    good = serve(real_files)
    assert sorted(download.ensure(MNIST, tmp_path, [good.url], FAST)) == sorted(NAMES)
    assert sorted(good.requests) == sorted("/" + n for n in NAMES)
    assert all(ua.startswith("scratchlr/") for ua in good.user_agents)
    assert cache_is_clean(tmp_path)
    assert download.ensure(MNIST, tmp_path, [good.url], FAST) == []
    assert len(good.requests) == 4  # nothing asked the second time
    assert splits.load(MNIST, str(tmp_path)).train.images.shape == (55000, 784)


def test_second_run_does_not_rehash(
    serve, real_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    download.ensure(MNIST, tmp_path, [serve(real_files).url], FAST)
    monkeypatch.setattr(
        splits, "read_verified", lambda *a, **k: pytest.fail("re-hashed a stamped file")
    )
    assert download.ensure(MNIST, tmp_path, [], FAST) == []
    # a changed file is no longer trusted
    (tmp_path / NAMES[1]).write_bytes(b"junk")
    monkeypatch.undo()
    with pytest.raises(download.DownloadError, match="removed bad cached file"):
        download.ensure(MNIST, tmp_path, [], FAST)
    assert not (tmp_path / NAMES[1]).exists()


def test_fallback_past_404_500_refused_and_timeout(serve, real_files, tmp_path: Path) -> None:
    missing = serve({})
    broken = serve(dict.fromkeys(NAMES, 500))
    slow = serve({n: stalling(2.0) for n in NAMES})
    good = serve(real_files)
    fetched = download.ensure(
        MNIST, tmp_path, [missing.url, broken.url, refused_url(), slow.url, good.url], FAST
    )
    assert sorted(fetched) == sorted(NAMES) and cache_is_clean(tmp_path)
    assert broken.requests.count("/" + NAMES[0]) == 2  # 5xx retried once (retries=1), then moved on


@pytest.mark.parametrize("damage", ["corrupted", "truncated", "dropped"])
def test_bad_mirror_is_rejected_and_next_one_used(
    serve, real_files, tmp_path: Path, damage: str
) -> None:
    name = NAMES[2]
    body = real_files[name]
    bad_routes = dict(real_files)
    if damage == "corrupted":
        payload = bytearray(gzip.decompress(body))
        payload[1000] ^= 1
        bad_routes[name] = gzip.compress(bytes(payload))
    elif damage == "truncated":
        bad_routes[name] = body[: len(body) - 100]  # a short file, served as if whole
    else:
        bad_routes[name] = dropping(body)
    bad = serve(bad_routes)
    with pytest.raises(download.DownloadError) as info:
        download.ensure(MNIST, tmp_path, [bad.url], FAST)
    message = str(info.value)
    assert name in message and bad.url in message and "--mirror" in message and "\n" not in message
    assert not (tmp_path / name).exists() and not (tmp_path / name[:-3]).exists()
    assert cache_is_clean(tmp_path)  # no partial file under any name
    good = serve(real_files)
    assert download.ensure(MNIST, tmp_path, [bad.url, good.url], FAST)[0] == name
    assert not any(p.startswith(f"/{name}") for p in good.requests[1:])  # fetched once
    assert splits.load(MNIST, str(tmp_path)).test.labels.shape == (10000,)


def test_local_mirrors_file_url_and_folder(mnist_source: Path, tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    assert sorted(download.ensure(MNIST, a, [mnist_source.resolve().as_uri()], FAST)) == sorted(
        NAMES
    )
    assert sorted(download.ensure(MNIST, b, [str(mnist_source)], FAST)) == sorted(NAMES)
    assert cache_is_clean(a) and cache_is_clean(b)


def test_uncompressed_mirror(serve, real_files, tmp_path: Path) -> None:
    plain = serve({n[:-3]: gzip.decompress(b) for n, b in real_files.items()})
    download.ensure(MNIST, tmp_path, [plain.url], FAST)
    kept = sorted(
        p.name for p in tmp_path.iterdir() if not p.name.startswith(".") and p.suffix != ".npy"
    )
    assert kept == sorted(n[:-3] for n in NAMES)
    assert splits.load(MNIST, str(tmp_path)).test.images.shape == (10000, 784)


def test_offline_with_no_cache_says_so(tmp_path: Path) -> None:
    with pytest.raises(
        download.DownloadError, match=r"^offline: no mirror could be reached and .* has no copy"
    ):
        download.ensure(MNIST, tmp_path, [refused_url(), "https://mnist.invalid/"], FAST)
    with pytest.raises(download.DownloadError, match="no mirror is configured"):
        download.ensure(MNIST, tmp_path, [], FAST)


def test_interrupt_mid_download_leaves_no_partial_file(
    serve, real_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = serve(real_files)
    download.ensure(MNIST, tmp_path, [good.url], FAST)
    big = tmp_path / NAMES[0]
    big.unlink()
    written = []
    real_write = download.http_get

    def interrupted(http, url, out, settings, name):
        real_write(http, url, out, settings, name)
        written.append(out.tell())
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "http_get", interrupted)
    with pytest.raises(KeyboardInterrupt):
        download.ensure(MNIST, tmp_path, [good.url], FAST)
    assert written and written[0] > 0
    assert not big.exists() and cache_is_clean(tmp_path)
    assert all((tmp_path / n).exists() for n in NAMES[1:])  # verified files are kept


def test_mirror_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(download.BUILTIN_ENV, raising=False)
    monkeypatch.setenv(download.MIRROR_ENV, "http://a/, /b")
    assert download.mirrors(MNIST) == ["http://a/", "/b", *MNIST.mirrors]
    assert download.mirrors(MNIST, ["http://c/"])[0] == "http://c/"
    kmnist = DATASETS["kmnist"]  # each data set's own public mirrors
    assert download.mirrors(kmnist)[2:] == list(kmnist.mirrors) != list(MNIST.mirrors)
    monkeypatch.setenv(download.BUILTIN_ENV, "")
    assert download.mirrors(MNIST, ["http://c/"]) == ["http://c/"]


def cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "scratchlr", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_cli_download_twice_then_train_offline(serve, real_files, tmp_path: Path) -> None:
    good = serve(real_files)
    d = str(tmp_path / "data")
    out, err = cli("download", "--data-dir", d, "--mirror", good.url).communicate(timeout=120)
    assert "fetched" in out and err == "", err
    out, err = cli("download", "--data-dir", d, "--mirror", good.url).communicate(timeout=120)
    assert "already verified" in out and len(good.requests) == 4
    good.close()
    p = cli("--data-dir", d, "--num-steps", "10", "--display-step", "5")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and out.startswith("Initial loss= 2.302585125"), err


def test_cli_bad_mirror_is_one_line(serve, real_files, tmp_path: Path) -> None:
    bad = serve({**real_files, NAMES[3]: real_files[NAMES[3]][:-10]})
    p = cli("download", "--data-dir", str(tmp_path), "--mirror", bad.url)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1 and len(err.strip().splitlines()) == 1 and NAMES[3] in err
    assert not (tmp_path / NAMES[3]).exists()


def test_two_concurrent_downloads(serve, real_files, tmp_path: Path) -> None:
    good = serve(real_files)
    procs = [cli("download", "--data-dir", str(tmp_path), "--mirror", good.url) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert cache_is_clean(tmp_path)
    assert splits.load(MNIST, str(tmp_path)).train.labels.shape == (55000,)
    assert len(good.requests) == 4  # the lock made the second wait, then find them verified


def test_downloaded_files_and_caches_are_readable_by_all(serve, real_files, tmp_path: Path) -> None:
    """A shared data folder: under the usual umask 022 every file the download writes (the
    four files, their .npy caches, the stamps, the lock) is 0644, as a plain ``open`` makes it,
    although each was written to a private temporary file first."""
    old = os.umask(0o022)
    try:
        download.ensure(MNIST, tmp_path / "d", [serve(real_files).url], FAST)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "d").iterdir()}
    assert len(modes) == 4 + 4 + 2 and set(modes.values()) == {0o644}, modes


def test_a_failed_first_download_leaves_nothing(tmp_path: Path) -> None:
    """No folder made for it, and no lock, stays behind when nothing could be fetched."""
    target = tmp_path / "new" / "data" / "mnist"
    with pytest.raises(download.DownloadError, match="offline"):
        download.ensure(MNIST, target, [refused_url()], FAST)
    assert list(tmp_path.iterdir()) == []
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(download.DownloadError):
        download.ensure(MNIST, kept / "mnist", [refused_url()], FAST)
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]  # only what this call made goes
    existing = tmp_path / "existing"
    existing.mkdir()  # made by the user: it stays, but not the lock
    with pytest.raises(download.DownloadError):
        download.ensure(MNIST, existing, [refused_url()], FAST)
    assert existing.is_dir() and list(existing.iterdir()) == []


def test_a_bad_file_in_a_read_only_folder_is_reported_not_removed(
    mnist_dir: Path, tmp_path: Path
) -> None:
    d = damaged_copy(mnist_dir, tmp_path / "d", "test_labels", "corrupted")
    d.chmod(0o555)
    try:
        with pytest.raises(download.DownloadError, match="read-only"):
            download.ensure(MNIST, d, [], FAST)
        assert (d / MNIST.files["test_labels"].name).exists()
    finally:
        d.chmod(0o755)
