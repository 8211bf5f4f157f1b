"""The README's Python API / DataLoader examples run as written (each marked block, in a fresh folder)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"<!-- readme-test(?P<opts>[^>]*)-->\s*```python\n(?P<code>.*?)```", re.S)


def _blocks() -> list[tuple[str, str]]:
    return [(m["opts"].strip(), m["code"]) for m in BLOCK.finditer(README.read_text(encoding="utf-8"))]


def test_readme_marks_its_examples():
    opts = [o for o, _ in _blocks()]
    assert len(opts) == 6 and opts.count("setup") == 1 and "needs=torchvision" in opts and "needs=ray" in opts


@pytest.mark.slow
@pytest.mark.parametrize("index", [i for i, (o, _) in enumerate(_blocks()) if o != "setup"])
def test_readme_example_runs(index, tmp_path, monkeypatch):
    blocks = _blocks()
    opts, code = blocks[index]
    for need in re.findall(r"needs=(\w+)", opts):
        if importlib.util.find_spec(need) is None:
            pytest.skip(f"README example {index} needs {need} (see the README's install note for it)")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for o, setup in blocks[:index]:
        if o == "setup":
            exec(compile(setup, f"README.md block setup", "exec"), namespace)
    exec(compile(code, f"README.md block {index}", "exec"), namespace)
