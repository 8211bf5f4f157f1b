"""Backend registry and parity: the compiled CPU backend against the brute-force reference and nvdiffrast."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from affectsynth.render import (
    RasterizeCpuContext,
    RasterizeCudaContext,
    RasterizeReferenceContext,
    antialias,
    available_backends,
    interpolate,
    rasterize,
    texture,
)
from affectsynth.render.context import BACKENDS, default_context

HAS_NVDIFFRAST = importlib.util.find_spec("nvdiffrast") is not None
HAS_CUDA = torch.cuda.is_available()


def test_registry_lists_working_backends():
    names = available_backends()
    assert names[:2] == ["cpu", "reference"]
    assert set(names) <= set(BACKENDS)
    assert ("cuda" in names) == (HAS_CUDA and HAS_NVDIFFRAST)


def test_default_context_for_cpu_is_shared_cpu_backend():
    ctx = default_context(torch.device("cpu"))
    assert isinstance(ctx, RasterizeCpuContext)
    assert ctx is default_context("cpu")


def test_default_context_rejects_unknown_device():
    with pytest.raises(ValueError, match="no raster backend"):
        default_context(torch.device("meta"))


@pytest.mark.skipif(HAS_NVDIFFRAST, reason="nvdiffrast is installed; the missing-extra error cannot occur")
def test_cuda_context_without_nvdiffrast_names_install_command():
    with pytest.raises(ImportError, match=r"pip install 'affectsynth\[gpu\]'"):
        RasterizeCudaContext()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("res", [(24, 24), (31, 17)])
def test_cpu_matches_reference_values_and_gradients(make_soup, seed, res):
    pos, tri = make_soup(12, seed=seed, batch=2)
    outs = {}
    for name, ctx in [("cpu", RasterizeCpuContext()), ("reference", RasterizeReferenceContext())]:
        p = pos.clone().requires_grad_(True)
        rast, rast_db = rasterize(p, tri, res, ctx=ctx)
        loss = (rast[..., :3] * torch.linspace(0.5, 1.5, 3)).sum() + 0.1 * (rast_db**2).sum()
        loss.backward()
        outs[name] = (rast.detach(), rast_db.detach(), p.grad)
    (r1, d1, g1), (r2, d2, g2) = outs["cpu"], outs["reference"]
    # Same coverage rule in float64 on both sides: identical triangle ids.
    torch.testing.assert_close(r1[..., 3], r2[..., 3], rtol=0, atol=0)
    torch.testing.assert_close(r1, r2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(d1, d2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-4)


def test_cpu_backward_kernel_matches_torch_autograd(make_soup):
    # Loss on rast only: the CPU backend uses its hand-written kernel, the reference uses autograd.
    pos, tri = make_soup(20, seed=9, batch=2, dtype=torch.float64)
    grads = []
    for ctx in (RasterizeCpuContext(), RasterizeReferenceContext()):
        p = pos.clone().requires_grad_(True)
        rast, _ = rasterize(p, tri, (33, 29), ctx=ctx, grad_db=False)
        (rast[..., :3] ** 2).sum().backward()
        grads.append(p.grad)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-9)


@pytest.mark.skipif(not (HAS_CUDA and HAS_NVDIFFRAST), reason="needs a CUDA GPU and nvdiffrast (pip install 'affectsynth[gpu]')")
def test_cpu_matches_nvdiffrast(make_soup):  # pragma: no cover - runs only with a GPU
    pos, tri = make_soup(30, seed=3, batch=2)
    ctx = RasterizeCudaContext()
    r_cpu, _ = rasterize(pos, tri, (64, 48))
    r_gpu, _ = rasterize(pos.cuda(), tri.cuda(), (64, 48), ctx=ctx)
    r_gpu = r_gpu.cpu()
    same = r_cpu[..., 3] == r_gpu[..., 3]
    assert same.float().mean() > 0.99
    both = same & (r_cpu[..., 3] > 0)
    torch.testing.assert_close(r_cpu[both], r_gpu[both], rtol=1e-3, atol=1e-4)
    attr = torch.rand(2, pos.shape[1], 2)
    out_cpu, _ = interpolate(attr, r_cpu, tri)
    out_gpu, _ = interpolate(attr.cuda(), r_gpu.cuda(), tri.cuda())
    torch.testing.assert_close(out_cpu[both], out_gpu.cpu()[both], rtol=1e-3, atol=1e-4)
    tex = torch.rand(1, 16, 16, 3)
    torch.testing.assert_close(texture(tex, out_cpu), texture(tex.cuda(), out_cpu.cuda()).cpu(), rtol=1e-4, atol=1e-4)
    color = torch.rand(2, 64, 48, 3)
    aa_cpu = antialias(color, r_gpu, pos, tri)
    aa_gpu = antialias(color.cuda(), r_gpu.cuda(), pos.cuda(), tri.cuda()).cpu()
    torch.testing.assert_close(aa_cpu, aa_gpu, rtol=1e-3, atol=1e-3)


def test_render_imports_no_other_affectsynth_package():
    import ast
    from pathlib import Path

    import affectsynth.render as pkg

    root = Path(pkg.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert len(files) > 10
    for path in files:
        name = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            for m in mods:
                if m.startswith("affectsynth"):
                    assert m.startswith("affectsynth.render"), f"{name} imports {m}"
