"""Docstrings tell the truth: documented arguments exist, and every doctest example passes.

kornia's ``RandomBrightness`` and trimesh's ``triangles.area`` document arguments they do not take
(STYLE.md section 4); here every public function, class and public method (names in a package's or
module's ``__all__``) has each name of its Google-style ``Args:`` section checked against its
signature. The doctests of every module run as they would in CI.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"synth": "affectsynth", "fitting": "affectsynth.fitting", "blendshapes": "affectsynth.blendshapes",
           "render": "affectsynth.render"}
MODULE_NAMES = sorted(
    ".".join((pkg, *(parts[:-1] if parts[-1] == "__init__" else parts)))
    for folder, pkg in FOLDERS.items()
    for path in (ROOT / folder).rglob("*.py")
    for parts in [path.relative_to(ROOT / folder).with_suffix("").parts]
)
ARGS_HEADER = re.compile(r"^(?P<indent>\s*)(?:Args|Arguments|Parameters|Keyword Args|Keyword Arguments|Other Parameters):\s*$")
NAME = r"\*{0,2}[A-Za-z_]\w*"
ATTRIBUTES_HEADER = re.compile(r"^(?P<indent>\s*)Attributes:\s*$")
ENTRY = re.compile(rf"^(?P<names>{NAME}(?:\s*,\s*{NAME})*)\s*(?:\([^)]*\))?\s*:(?:\s|$)")


def documented_args(doc: str | None, *, header: re.Pattern[str] = ARGS_HEADER) -> tuple[list[str], list[str]]:
    """(names, malformed entry lines) of every Google-style ``Args:``-like section of ``doc``.

    ``a, b: ...`` documents both; ``*args`` / ``**kwargs`` keep their stars; ``x (Tensor): ...``
    is accepted. Continuation lines (indented deeper than the first entry) are skipped.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    names: list[str] = []
    malformed: list[str] = []
    i = 0
    while i < len(lines):
        m = header.match(lines[i])
        i += 1
        if not m:
            continue
        header_indent = len(m["indent"])
        entry_indent = None
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                i += 1
                continue
            indent = len(line) - len(line.lstrip())
            if indent <= header_indent:
                break
            if entry_indent is None:
                entry_indent = indent
            if indent == entry_indent:
                e = ENTRY.match(line.strip())
                if e:
                    names += [n.strip() for n in e["names"].split(",")]
                else:
                    malformed.append(line.strip())
            i += 1
    return names, malformed


def test_documented_args_parser() -> None:
    doc = """Summary.

    Args:
        pos: [B, V, 4] float32 clip-space positions;
            a continuation line: with a colon.
        a, b: two at once.
        x (Tensor): typed.
        *args: extra positionals.
        **kwargs: extra options.

    Returns:
        value: not an argument.

    Keyword Args:
        ctx: raster context.
    """
    names, malformed = documented_args(doc)
    assert names == ["pos", "a", "b", "x", "*args", "**kwargs", "ctx"]
    assert malformed == []
    assert documented_args("S.\n\n    Args:\n        not an entry line\n")[1] == ["not an entry line"]


def _public_objects() -> dict[str, object]:
    """'module.qualname' -> object, for every name in a package's or module's ``__all__``."""
    found: dict[str, object] = {}
    seen: set[int] = set()
    for mod_name in MODULE_NAMES:
        module = importlib.import_module(mod_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or id(obj) in seen:
                continue
            if not getattr(obj, "__module__", "").startswith("affectsynth"):
                continue  # re-exported third-party names
            seen.add(id(obj))
            found[f"{obj.__module__}.{obj.__qualname__}"] = obj
            if inspect.isclass(obj):
                for attr, raw in vars(obj).items():
                    if attr.startswith("_") and attr not in ("__init__", "__call__", "__new__"):
                        continue
                    func = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
                    if inspect.isfunction(func) and id(func) not in seen:
                        seen.add(id(func))
                        found[f"{obj.__module__}.{obj.__qualname__}.{attr}"] = func
    return found


PUBLIC = _public_objects()


def _signature_names(obj: object) -> tuple[set[str], bool]:
    """(parameter names, with ``*``/``**`` prefixes for variadics too; has **kwargs)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return set(), True  # no signature (builtins): accept whatever is documented
    names: set[str] = set()
    has_var_kw = False
    for p in sig.parameters.values():
        names.add(p.name)
        if p.kind is p.VAR_POSITIONAL:
            names.add("*" + p.name)
        elif p.kind is p.VAR_KEYWORD:
            names.add("**" + p.name)
            has_var_kw = True
    return names, has_var_kw


def args_problems(obj: object) -> list[str]:
    """Documented argument names that ``obj``'s signature lacks, and unparseable ``Args:`` entries."""
    doc = obj.__doc__ if inspect.isfunction(obj) else inspect.getdoc(obj)
    if inspect.isclass(obj) and obj.__doc__ is None:
        return []  # inherited docstrings belong to the parent
    names, malformed = documented_args(doc)
    problems = [f"unparseable Args entry {line!r} (expected 'name: description')" for line in malformed]
    if not names:
        return problems
    params, has_var_kw = _signature_names(obj)
    for name in names:
        if name in params:
            continue
        if name.lstrip("*") in params:
            continue  # 'args' documented as '*args' or vice versa
        if has_var_kw and not name.startswith("*"):
            continue  # may be forwarded through **kwargs
        problems.append(f"documents {name!r}, which is not a parameter of {sorted(params)}")
    return problems


def test_public_objects_found() -> None:
    assert len(PUBLIC) > 50, sorted(PUBLIC)
    with_args = [q for q, obj in PUBLIC.items() if documented_args(inspect.getdoc(obj))[0]]
    assert len(with_args) > 30, with_args


def test_args_check_catches_a_wrong_name() -> None:
    def area(triangles, *, sum=False):  # noqa: A002
        """Area of triangles.

        Args:
            triangles: [T, 3, 3] points.
            crosses: precomputed cross products.
            sum: add them up.
        """

    assert args_problems(area) == ["documents 'crosses', which is not a parameter of ['sum', 'triangles']"]


@pytest.mark.parametrize("qualname", sorted(PUBLIC))
def test_documented_args_exist(qualname: str) -> None:
    problems = args_problems(PUBLIC[qualname])
    assert not problems, f"{qualname}: " + "; ".join(problems)


def instance_attributes(cls: type) -> set[str]:
    """Names a class instance can have: class/dataclass attributes, annotations, ``self.x = ...``."""
    names = set(dir(cls))
    for klass in cls.__mro__:
        names |= set(getattr(klass, "__annotations__", {}))
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                names.add(node.attr)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setattr" and len(node.args) > 1:
                arg = node.args[1]  # object.__setattr__(self, "x", ...) in frozen dataclasses
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value)
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "__setattr__" and len(node.args) > 1:
                arg = node.args[1]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value)
    return names


def test_attributes_check_catches_a_wrong_name() -> None:
    class Settings:
        """Defaults.

        Attributes:
            size: texture size.
            blur: not an attribute.
        """

        size: int = 4

        def __init__(self) -> None:
            self.extra = 1

    names, _ = documented_args(Settings.__doc__, header=ATTRIBUTES_HEADER)
    assert names == ["size", "blur"]
    known = instance_attributes(Settings)
    assert "size" in known and "extra" in known and "blur" not in known


CLASSES = sorted(q for q, obj in PUBLIC.items() if inspect.isclass(obj))


@pytest.mark.parametrize("qualname", CLASSES)
def test_documented_attributes_exist(qualname: str) -> None:
    cls = PUBLIC[qualname]
    if cls.__doc__ is None:
        return
    names, malformed = documented_args(cls.__doc__, header=ATTRIBUTES_HEADER)
    known = instance_attributes(cls)
    missing = [n for n in names if n not in known]
    assert not malformed, f"{qualname}: unparseable Attributes entries {malformed}"
    assert not missing, f"{qualname}: documents attributes {missing} that the class does not have"


# ---- doctests ----------------------------------------------------------------------------------

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _doctests(mod_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(mod_name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, mod_name)
    return [t for t in tests if t.examples]


WITH_DOCTESTS = [name for name in MODULE_NAMES if _doctests(name)]


@pytest.mark.parametrize("mod_name", WITH_DOCTESTS)
def test_doctests(mod_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tests = _doctests(mod_name)
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {mod_name}:\n" + "".join(report)


def test_doctest_runner_reports_a_wrong_example() -> None:
    test = doctest.DocTestParser().get_doctest(">>> 1 + 1\n3\n", {}, "probe", None, 0)
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    runner.run(test, out=lambda _: None)
    assert runner.summarize(verbose=False).failed == 1


def test_some_modules_have_doctests() -> None:
    total = sum(len(t.examples) for name in WITH_DOCTESTS for t in _doctests(name))
    assert total >= 20, f"only {total} doctest examples in the whole package"
