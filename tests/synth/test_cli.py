"""The CLI in-process (CliRunner): help, usage errors (exit 2), fatal errors (exit 1), dry runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from affectsynth.cli import SUBCOMMANDS, main
from affectsynth.images import save_png


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture()
def inputs(tmp_path, photo):
    d = tmp_path / "in"
    save_png(d / "a.png", photo)
    save_png(d / "sub" / "a.png", photo)
    (d / "sub" / "bad.jpg").write_bytes(b"")
    return d


def test_help_lists_commands_with_examples(runner):
    r = runner.invoke(main, ["--help"])
    assert r.exit_code == 0
    for name in SUBCOMMANDS:
        assert name in r.output
    assert "Examples:" in r.output and "affectsynth generate" in r.output


@pytest.mark.parametrize("cmd", ["generate", "grid", "demo", "build-expressions"])
def test_subcommand_help_has_examples(runner, cmd):
    r = runner.invoke(main, [cmd, "--help"])
    assert r.exit_code == 0, r.output
    assert "Example" in r.output and f"affectsynth {cmd}" in r.output


def test_help_imports_no_heavy_module():
    code = ("import sys; from affectsynth.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'mediapipe', 'affectsynth.blendshapes', 'affectsynth.cli_generate') "
            "if m in sys.modules]\nprint('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_unknown_command_is_usage_error(runner):
    r = runner.invoke(main, ["frobnicate"])
    assert r.exit_code == 2 and "No such command" in r.output


@pytest.mark.parametrize("args,needle", [
    (["--expressions", "joy,foo"], "unknown expression 'foo'"),
    (["--intensity", "1.5"], "[0, 1]"),
    (["--intensity", "x"], "not a number"),
    (["--va=0.5"], "V,A"),
    (["--va=2,0"], "[-1, 1]"),
    (["--va=0.5,0", "--intensity", "0.5"], "--intensity applies to --expressions"),
    (["--va-grid", "0"], ">= 1"),
    (["--per-image", "9"], "--per-image"),
    (["--size", "4"], "--size"),
    (["--workers", "0"], "--workers"),
    (["--faces", "most"], "'most' is not one of"),
    (["--expressions-lib", "/nonexistent.npz"], "does not exist"),
])
def test_generate_usage_errors_exit_2(runner, inputs, tmp_path, args, needle):
    r = runner.invoke(main, ["generate", str(inputs), str(tmp_path / "out"), "--dry-run", *args])
    assert r.exit_code == 2, r.output
    assert needle in r.output
    assert not (tmp_path / "out").exists()


def test_generate_dirs_checked(runner, inputs, tmp_path):
    r = runner.invoke(main, ["generate", str(tmp_path / "missing"), str(tmp_path / "out")])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = runner.invoke(main, ["generate", str(inputs), str(inputs), "--dry-run"])
    assert r.exit_code == 2 and "must differ" in r.output
    (tmp_path / "file").write_text("x")
    r = runner.invoke(main, ["generate", str(inputs), str(tmp_path / "file"), "--dry-run"])
    assert r.exit_code == 2


def test_dry_run_lists_outputs_and_writes_nothing(runner, inputs, tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(main, ["generate", str(inputs), str(out), "--dry-run", "--expressions", "happy,sad",
                             "--intensity", "0.5,1", "--va=-0.5,0.25", "--va-grid", "2"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 3 * (4 + 1 + 4)
    assert str(out / "sub" / "a_png" / "f0_happiness_i0.50.png") in lines
    assert str(out / "a_png" / "f0_va_-0.50_+0.25.png") in lines
    assert "3 images" in r.stderr and "nothing written" in r.stderr
    assert not out.exists()


def test_dry_run_json_and_defaults(runner, inputs, tmp_path):
    r = runner.invoke(main, ["generate", str(inputs), str(tmp_path / "out"), "--dry-run", "--format", "json",
                             "--per-image", "2"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["sources"] == 3 and len(d["planned"]) == 6
    assert {p["target"]["kind"] for p in d["planned"]} == {"expression"}  # default: the 8 categories
    r2 = runner.invoke(main, ["generate", str(inputs), str(tmp_path / "out"), "--dry-run", "--format", "json",
                              "--per-image", "2"])
    assert json.loads(r2.stdout) == d  # seeded draw


def test_dry_run_counts_done_outputs(runner, inputs, tmp_path, photo):
    out = tmp_path / "out"
    from affectsynth.manifest import Manifest, ManifestRow

    save_png(out / "a_png" / "f0_fear_i1.00.png", photo)
    with Manifest(out / "manifest.csv") as m:
        m.append(ManifestRow("a.png", "a_png/f0_fear_i1.00.png", "ok"))
    before = (out / "manifest.csv").read_bytes()
    r = runner.invoke(main, ["generate", str(inputs), str(out), "--dry-run", "--expressions", "fear"])
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 2 and "1 already done" in r.stderr
    assert (out / "manifest.csv").read_bytes() == before


def test_fatal_error_is_one_line_exit_1(runner, inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.csv").write_text("a,b\n")  # a manifest of another format: fatal
    monkeypatch.delenv("AFFECTSYNTH_DEBUG", raising=False)
    r = runner.invoke(main, ["generate", str(inputs), str(out), "--quiet"])
    assert r.exit_code == 1
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("affectsynth: error: ManifestError:") and "Traceback" not in r.stderr
    monkeypatch.setenv("AFFECTSYNTH_DEBUG", "1")
    r = runner.invoke(main, ["generate", str(inputs), str(out), "--quiet"])
    assert r.exit_code == 1 and type(r.exception).__name__ == "ManifestError"


def test_grid_usage_errors(runner, inputs, tmp_path):
    img = str(inputs / "a.png")
    r = runner.invoke(main, ["grid", img])
    assert r.exit_code == 2 and "--out" in r.output
    r = runner.invoke(main, ["grid", img, "--out", str(tmp_path / "g.png"), "--expressions", "fear", "--va-wheel", "4"])
    assert r.exit_code == 2 and "alternatives" in r.output
    r = runner.invoke(main, ["grid", img, "--out", str(tmp_path / "g.png"), "--va-wheel", "0"])
    assert r.exit_code == 2
    r = runner.invoke(main, ["grid", str(tmp_path / "nope.png"), "--out", str(tmp_path / "g.png")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_console_script_exit_code():
    exe = os.path.join(os.path.dirname(sys.executable), "affectsynth")
    if not os.path.exists(exe):
        pytest.skip("console script not installed in this environment")
    p = subprocess.run([exe, "generate", "/nonexistent-dir", "/tmp/x"], capture_output=True, text=True)
    assert p.returncode == 2 and "does not exist" in p.stderr


def test_dry_run_into_a_closed_pipe_exits_quietly(inputs, tmp_path):
    """`generate --dry-run | head -1`: no traceback, Unix's broken-pipe status (141)."""
    env = dict(os.environ, AFFECTSYNTH_NO_PROGRESS="1")
    cmd = (f"{sys.executable} -m affectsynth.cli generate {inputs} {tmp_path / 'out'} --dry-run "
           f"--expressions all --intensity 0.25,0.5,0.75,1 | head -1")
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, env=env, timeout=120)
    assert p.stdout.count("\n") == 1
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr
    assert p.returncode in (0, 141), (p.returncode, p.stderr)  # 0 when the whole list fit in the pipe


@pytest.mark.slow
def test_grid_of_a_photo_without_a_face_says_so(runner, tmp_path):
    """No face: the grid is still written (input cell, row labelled 'no face'), a message, exit 3."""
    import numpy as np

    save_png(tmp_path / "wall.png", np.full((96, 96, 3), 120, np.uint8))
    r = runner.invoke(main, ["grid", str(tmp_path / "wall.png"), "--out", str(tmp_path / "g.png"),
                             "--expressions", "happiness,sadness", "--cell", "32"])
    assert r.exit_code == 3, r.output
    assert (tmp_path / "g.png").is_file() and "no face" in r.stderr and "nothing synthesised" in r.stderr


def test_the_program_exits_with_its_status_and_everything_written(inputs, tmp_path):
    """`python -m affectsynth.cli` (like the console script) skips the interpreter's teardown
    (`affectsynth.cli.run`): its exit status, what it printed (the manifest's path on stdout, the
    summary on stderr), every manifest row and output are still there."""
    out = tmp_path / "out"
    env = dict(os.environ, AFFECTSYNTH_NO_PROGRESS="1")
    p = subprocess.run([sys.executable, "-m", "affectsynth.cli", "generate", str(inputs), str(out),
                        "--expressions", "happiness", "--workers", "1", "--min-face", "8"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 3, p.stderr  # finished, one input unreadable
    assert p.stdout.strip() == str(out / "manifest.csv") and "2 outputs written" in p.stderr, (p.stdout, p.stderr)
    rows = (out / "manifest.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 and sum("bad.jpg" in r for r in rows) == 1
    assert len(list(out.rglob("*.png"))) == 2
