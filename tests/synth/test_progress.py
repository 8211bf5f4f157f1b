from __future__ import annotations

import io

import pytest

from affectsynth.progress import NullProgress, make_progress, progress_enabled


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_enabled_rules(monkeypatch):
    monkeypatch.delenv("AFFECTSYNTH_NO_PROGRESS", raising=False)
    assert progress_enabled(stream=_Tty())
    assert not progress_enabled(stream=io.StringIO())  # not a terminal
    assert not progress_enabled(quiet=True, stream=_Tty())
    monkeypatch.setenv("AFFECTSYNTH_NO_PROGRESS", "1")
    assert not progress_enabled(stream=_Tty())
    monkeypatch.setenv("AFFECTSYNTH_NO_PROGRESS", "0")
    assert progress_enabled(stream=_Tty())


def test_make_progress(capsys):
    bar = make_progress(3, desc="quiet", enabled=False)
    bar.update(2)
    bar.set_postfix_str("x")
    bar.close()
    assert "quiet" not in capsys.readouterr().err  # disabled: draws nothing
    with pytest.warns(DeprecationWarning, match="make_progress"):
        NullProgress(3).close()
    bar = make_progress(2, desc="generate", enabled=True)
    bar.update(2)
    bar.close()
    err = capsys.readouterr().err
    assert "generate" in err and "2/2" in err and "img/s" in err
