"""Unit tests for lab.progress.progress_bar: tqdm when asked for, nothing otherwise."""
from __future__ import annotations

import pytest
from tqdm.std import tqdm as std_tqdm

from lab.progress import progress_bar


def test_disabled_bar_does_nothing(capsys):
    with progress_bar(5, "builds", enabled=False) as bar:
        assert not isinstance(bar, std_tqdm)
        for _ in range(5):
            assert bar.update() is None
        assert bar.update(3) is None
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")


def test_enabled_bar_writes_to_stderr_and_reaches_the_total(capsys):
    with progress_bar(4, "builds") as bar:
        assert isinstance(bar, std_tqdm)
        for _ in range(4):
            bar.update(1)
        assert bar.n == 4 and bar.total == 4
    out, err = capsys.readouterr()
    assert out == ""
    final = err.replace("\r", "\n").strip().splitlines()[-1]
    assert "4/4" in final and "builds" in final and "100%" in final
    assert bar.disable          # closed on leaving the block


def test_enabled_bar_is_closed_when_the_block_raises(capsys):
    with pytest.raises(RuntimeError, match="boom"):
        with progress_bar(3, "builds", enabled=True) as bar:
            bar.update(1)
            raise RuntimeError("boom")
    assert bar.disable
    err = capsys.readouterr().err
    assert "1/3" in err and "3/3" not in err
