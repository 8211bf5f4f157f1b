"""Import hygiene, in fresh interpreters: lazy top-level imports and a light ``affectsynth --help``.

``import affectsynth.render`` runs ``synth/__init__.py`` (the parent package), so that file must stay
lazy: no mediapipe, no model loading. ``affectsynth --help`` imports no subcommand module, so no
torch and no mediapipe. Each probe is one fresh interpreter running steps in order and recording,
after each step, which heavy modules are loaded (cumulative, so a later step can only add).
Times are printed (run with ``-s``) and bounded only loosely.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from affectsynth.cli import SUBCOMMANDS

#: Generous wall-clock bound for one step in a fresh interpreter, seconds (a shared 2-core box).
HEAVY = ("torch", "mediapipe", "numba", "cv2")

#: Runs the steps given as JSON in argv[1]: ["import", "pkg"] or ["cli", ["--help"]].
_PROBE = textwrap.dedent(
    """
    import json, sys, time
    out = []
    for kind, arg in json.loads(sys.argv[1]):
        t0 = time.perf_counter()
        code = 0
        if kind == "import":
            __import__(arg)
        else:
            sys.argv = ["affectsynth", *arg]
            from affectsynth.cli import main
            try:
                main()
            except SystemExit as e:  # click's standalone mode exits
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            print("@@END@@", flush=True)
        out.append({"step": [kind, arg], "code": code, "seconds": time.perf_counter() - t0,
                    "loaded": [m for m in %r if m in sys.modules]})
    sys.stderr.write("\\n@@PROBE@@" + json.dumps(out) + "\\n")
    """
    % (HEAVY,)
)


def run_probe(steps: list[tuple[str, object]], tmp_path: Path) -> tuple[list[dict], list[str]]:
    """Run ``steps`` in one fresh interpreter; return (one report per step, stdout of each CLI step)."""
    env = {**os.environ, "AFFECTSYNTH_NO_PROGRESS": "1"}
    env.pop("AFFECTSYNTH_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(steps)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    marker = proc.stderr.rfind("@@PROBE@@")
    if proc.returncode != 0 or marker < 0:
        pytest.fail(f"probe {steps!r} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    reports = json.loads(proc.stderr[marker + len("@@PROBE@@"):].strip())
    for r in reports:
        print(f"\n{' '.join(map(str, r['step']))}: {r['seconds']:.2f} s, heavy modules loaded so far {r['loaded']}")
    return reports, proc.stdout.split("@@END@@")[:-1]


def test_imports_are_lazy(tmp_path: Path) -> None:
    # Order matters: each step may only add modules, so a later one never hides an earlier one.
    steps = [("import", "affectsynth"), ("import", "affectsynth.render"), ("import", "affectsynth.blendshapes"),
             ("import", "affectsynth.fitting")]
    reports, _ = run_probe(steps, tmp_path)
    top, render, blend, fitting = reports
    assert "mediapipe" not in top["loaded"] and "torch" not in top["loaded"], (
        f"`import affectsynth` loads {top['loaded']}; synth/__init__.py must stay lazy")
    assert "torch" in render["loaded"], "probe sanity: render needs torch, the probe must see it"
    for r in (render, blend, fitting):
        assert "mediapipe" not in r["loaded"], (
            f"`import {r['step'][1]}` loads mediapipe; import it inside the function that needs it")


def test_cli_help_imports_no_torch(tmp_path: Path) -> None:
    subs = sorted(SUBCOMMANDS)
    steps = [("cli", ["--help"])] + [("cli", [sub, "--help"]) for sub in subs]
    reports, outs = run_probe(steps, tmp_path)
    top = reports[0]
    assert top["code"] == 0, outs[0]
    assert "Usage:" in outs[0] and all(sub in outs[0] for sub in subs), outs[0]
    assert "torch" not in top["loaded"], "`affectsynth --help` imports torch"
    assert "mediapipe" not in top["loaded"], "`affectsynth --help` imports mediapipe"
    for r, out in zip(reports[1:], outs[1:]):
        assert r["code"] == 0 and "Usage:" in out, (r, out)
        assert "mediapipe" not in r["loaded"], f"`affectsynth {r['step'][1][0]} --help` imports mediapipe"
