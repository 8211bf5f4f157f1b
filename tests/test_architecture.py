"""Architecture rules, checked on the source with `ast`: dependency direction, `__all__`, render is face-free.

Rule (STYLE.md section 1): ``synth -> {fitting, blendshapes, render}``, ``fitting -> {blendshapes,
render}``; ``blendshapes`` and ``render`` import no other affectsynth package. Every import counts:
top-level, inside functions, under ``if TYPE_CHECKING:``, relative (resolved to absolute), and
``importlib.import_module("...")`` / ``__import__("...")`` with a literal name.
"""

from __future__ import annotations

import ast
import importlib
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: source folder -> (absolute package name, short package key used by the rule).
FOLDERS: dict[str, tuple[str, str]] = {
    "synth": ("affectsynth", "synth"),
    "fitting": ("affectsynth.fitting", "fitting"),
    "blendshapes": ("affectsynth.blendshapes", "blendshapes"),
    "render": ("affectsynth.render", "render"),
}
#: package key -> other package keys it may import (itself is always allowed).
ALLOWED: dict[str, frozenset[str]] = {
    "synth": frozenset({"fitting", "blendshapes", "render"}),
    "fitting": frozenset({"blendshapes", "render"}),
    "blendshapes": frozenset(),
    "render": frozenset(),
}
SUBPACKAGES: dict[str, str] = {pkg: key for pkg, key in FOLDERS.values() if pkg != "affectsynth"}


@dataclass(frozen=True)
class Module:
    path: Path  # source file
    name: str  # absolute dotted module name, e.g. "affectsynth.render.camera"
    key: str  # package key: "synth" | "fitting" | "blendshapes" | "render"
    is_init: bool


def _modules() -> list[Module]:
    mods = []
    for folder, (pkg, key) in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            is_init = parts[-1] == "__init__"
            dotted = ".".join((pkg, *(parts[:-1] if is_init else parts)))
            mods.append(Module(path, dotted, key, is_init))
    return mods


MODULES = _modules()
MODULE_NAMES = frozenset(m.name for m in MODULES)


def package_of(module_name: str) -> str | None:
    """Package key of an absolute module name; None if it is not part of affectsynth."""
    if module_name != "affectsynth" and not module_name.startswith("affectsynth."):
        return None
    for pkg, key in SUBPACKAGES.items():
        if module_name == pkg or module_name.startswith(pkg + "."):
            return key
    return "synth"


def _resolve_relative(mod: Module, level: int, target: str | None) -> str:
    package = mod.name if mod.is_init else mod.name.rpartition(".")[0]
    parts = package.split(".")
    if level - 1 >= len(parts):
        raise ValueError(f"{mod.path}: relative import beyond the top-level package (level {level})")
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{target}" if target else base


def imported_modules(mod: Module) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in ``mod``, including nested and lazy ones."""
    tree = ast.parse(mod.path.read_text(encoding="utf-8"), filename=str(mod.path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(mod, node.level, node.module) if node.level else node.module or ""
            for alias in node.names:
                # `from affectsynth import render` imports the module affectsynth.render.
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in MODULE_NAMES else base))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            arg = node.args[0]
            if fname in ("import_module", "__import__") and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                name = arg.value
                if name.startswith("."):  # importlib.import_module(".x", package=...): rare; resolve from here
                    level = len(name) - len(name.lstrip("."))
                    name = _resolve_relative(mod, level, name.lstrip(".") or None)
                found.append((node.lineno, name))
    return found


def test_every_source_folder_has_modules() -> None:
    assert {m.key for m in MODULES} == {key for _, key in FOLDERS.values()}
    for folder in FOLDERS:
        assert (ROOT / folder / "__init__.py").is_file(), f"{folder}/__init__.py missing"


def test_package_of_mapping() -> None:
    assert package_of("affectsynth") == "synth"
    assert package_of("affectsynth.cli") == "synth"
    assert package_of("affectsynth.render.camera") == "render"
    assert package_of("affectsynth.renderer") == "synth"  # a prefix is not a package
    assert package_of("affectsynth.fitting") == "fitting"
    assert package_of("affectsynth.blendshapes.va") == "blendshapes"
    assert package_of("torch.nn") is None


def test_import_parser_sees_nested_relative_and_dynamic_imports(tmp_path: Path) -> None:
    src = (
        "from . import camera\n"
        "from .. import fitting\n"
        "from ..blendshapes.va import VA\n"
        "def f():\n"
        "    import affectsynth.labels\n"
        "    from affectsynth import render, __version__\n"
        "    importlib.import_module('affectsynth.fitting.fit')\n"
    )
    path = tmp_path / "probe.py"
    path.write_text(src)
    mod = Module(path, "affectsynth.render.probe", "render", is_init=False)
    got = [name for _, name in imported_modules(mod)]
    assert got.count("affectsynth.render.camera") == 1
    assert "affectsynth.fitting" in got
    assert "affectsynth.blendshapes.va" in got
    assert "affectsynth.labels" in got
    assert "affectsynth.render" in got and "affectsynth" in got  # `__version__` is a name of affectsynth
    assert "affectsynth.fitting.fit" in got


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: f"{m.path.parent.name}/{m.path.name}")
def test_dependency_direction(mod: Module) -> None:
    bad = []
    for line, name in imported_modules(mod):
        key = package_of(name)
        if key is None or key == mod.key:
            continue
        if key not in ALLOWED[mod.key]:
            bad.append(f"{mod.path.relative_to(ROOT)}:{line} imports {name} ({mod.key} -> {key})")
    assert not bad, "wrong dependency edges:\n" + "\n".join(bad)


PACKAGES = [pkg for pkg, _ in FOLDERS.values()]


@pytest.mark.parametrize("pkg", PACKAGES)
def test_init_defines_explicit_all(pkg: str) -> None:
    folder = next(f for f, (p, _) in FOLDERS.items() if p == pkg)
    path = ROOT / folder / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    literal = None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            literal = node.value
    assert isinstance(literal, (ast.List, ast.Tuple)), f"{path}: expected a literal list `__all__ = [...]`"
    names = [e.value for e in literal.elts if isinstance(e, ast.Constant)]
    assert len(names) == len(literal.elts) and all(isinstance(n, str) for n in names), f"{path}: __all__ holds non-strings"
    dupes = sorted({n for n in names if names.count(n) > 1})
    assert not dupes, f"{path}: duplicate names in __all__: {dupes}"

    module = importlib.import_module(pkg)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{pkg}.__all__ names that do not exist: {missing}"


@pytest.mark.parametrize("mod", [m for m in MODULES if not m.is_init], ids=lambda m: f"{m.path.parent.name}/{m.path.name}")
def test_module_all_names_exist(mod: Module) -> None:
    module = importlib.import_module(mod.name)
    names = getattr(module, "__all__", None)
    if names is None:
        pytest.skip(f"{mod.name} has no __all__ (only required in __init__.py)")
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{mod.name}.__all__ names that do not exist: {missing}"


# ---- render never mentions faces -------------------------------------------------------------

#: Words that are face-specific in this project. Matched per word of identifiers (snake_case and
#: CamelCase split), strings, docstrings and comments, so 'surface', 'interface', 'clip' do not match.
FACE_WORDS = frozenset(
    """face faces facial landmark landmarks expression expressions blendshape blendshapes mouth teeth
    tooth eye eyes eyelid eyelids eyebrow eyebrows brow brows lip lips jaw nose neck cheek cheeks chin
    smile emotion emotions skin iris gaze forehead hair portrait mediapipe 3dmm morphable facs arkit
    ict facekit valence arousal""".split()
)
#: "MediaPipe" (CamelCase) splits into "media pipe": citing its pixel convention is allowed; the
#: lowercase layout/package name ("mediapipe468", ``import mediapipe``) is not.
#: Graphics meanings of 'face' removed before matching: "triangles face outwards", "backface".
FACE_VERB = re.compile(r"\bfaces?\s+(?:outwards?|inwards?|away|towards?|the\s+(?:camera|viewer))\b", re.IGNORECASE)


def _words(text: str) -> list[str]:
    text = FACE_VERB.sub(" ", text)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    text = re.sub(r"([A-Za-z])([0-9])", r"\1 \2", text)  # "mediapipe468" -> "mediapipe 468"
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", text) if w]


def face_mentions(path: Path) -> list[str]:
    """'file:line: word in <token>' for each face-specific word in a Python file."""
    hits = []
    src = path.read_text(encoding="utf-8")
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in (tokenize.NAME, tokenize.STRING, tokenize.COMMENT):
            continue
        for i, line in enumerate(tok.string.splitlines() or [""]):
            words = sorted({w for w in _words(line) if w in FACE_WORDS})
            if words:
                hits.append(f"{path.relative_to(ROOT)}:{tok.start[0] + i}: {words} in {line.strip()[:90]!r}")
    return hits


def test_face_scanner_sees_face_words_and_spares_graphics_words() -> None:
    src = (
        "class FaceModel: pass\n"
        "mouth_mask = 1  # keep the teeth\n"
        "x = 'surface interface clip backface; triangles face outwards'\n"
        "def f(n_landmarks): return 'an expression'\n"
        "k = 'mediapipe468'  # MediaPipe's pixel centres\n"
    )
    hits = []
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type in (tokenize.NAME, tokenize.STRING, tokenize.COMMENT):
            hits += [w for w in _words(tok.string) if w in FACE_WORDS]
    assert sorted(hits) == ["expression", "face", "landmarks", "mediapipe", "mouth", "teeth"]


@pytest.mark.parametrize("path", sorted((ROOT / "render").rglob("*.py")), ids=lambda p: p.relative_to(ROOT / "render").as_posix())
def test_render_never_mentions_faces(path: Path) -> None:
    hits = face_mentions(path)
    assert not hits, "render must stay face-agnostic:\n" + "\n".join(hits)
