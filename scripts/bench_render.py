"""Benchmark the render primitives on the face mesh: rasterize + interpolate + texture, forward and backward.

Usage:
    OMP_NUM_THREADS=1 python scripts/bench_render.py [--json PATH] [--repeats N] [--quick]

Prints medians and IQRs (torch.utils.benchmark, blocked_autorange) for resolution {256, 512} x
batch {1, 8}, the pure-torch reference in the same run with the ratio, and moderngl (Mesa llvmpipe,
one thread) on the same mesh if it is installed.
The mesh is the embedded face model (affectsynth.fitting.FaceModel) when available, else the
shared ICT-FaceKit npz.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils import benchmark

from affectsynth.render import (
    RasterizeCpuContext,
    RasterizeReferenceContext,
    interpolate,
    rasterize,
    texture,
)
from affectsynth.render.interpolate import _interpolate_torch
from affectsynth.render.texture import _texture_torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_NPZ = ROOT.parent / "shared" / "assets" / "ict-facekit" / "ict_facekit_face_mouth.npz"


def load_mesh() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """Vertices [V, 3] cm, triangles [T, 3] int32, uv [U, 2], triangle_uv [T, 3] int32, source."""
    try:
        import affectsynth.fitting as fitting

        face_model = getattr(fitting, "FaceModel", None)
        if face_model is not None:
            m = face_model.default()
            return (m.neutral.float(), m.triangles.int(), m.uv.float(), m.triangle_uv.int(), "FaceModel.default()")
    except (ImportError, FileNotFoundError, ValueError) as exc:
        print(f"bench: FaceModel unavailable ({exc}); using the shared npz", file=sys.stderr)
    if not SHARED_NPZ.exists():
        raise FileNotFoundError(f"bench: neither FaceModel nor {SHARED_NPZ} is available")
    d = np.load(SHARED_NPZ)
    return (
        torch.from_numpy(d["neutral"]).float(),
        torch.from_numpy(d["triangles"]).int(),
        torch.from_numpy(d["uv"]).float(),
        torch.from_numpy(d["triangle_uv"]).int(),
        str(SHARED_NPZ.name),
    )


def clip_positions(verts: torch.Tensor, size: int, batch: int) -> torch.Tensor:
    """Frontal perspective view with the face filling most of the frame; small yaw per batch item."""
    out = []
    for b in range(batch):
        yaw = np.radians(-12 + 24 * b / max(batch - 1, 1)) if batch > 1 else 0.0
        c, s = float(np.cos(yaw)), float(np.sin(yaw))
        x = c * verts[:, 0] + s * verts[:, 2]
        zm = -s * verts[:, 0] + c * verts[:, 2]
        # Model (+y up, +z to viewer) -> OpenCV camera 55 cm away.
        xc, yc, zc = x, -(verts[:, 1] + 2.0), 55.0 - zm
        f = 2.05 * size  # the face spans ~85% of the frame height
        u = f * xc / zc + size / 2
        v = f * yc / zc + size / 2
        near, far = 1.0, 200.0
        zclip = (zc * (far + near) - 2 * far * near) / (far - near)
        out.append(torch.stack([(2 * u / size - 1) * zc, (2 * v / size - 1) * zc, zclip, zc], -1))
    return torch.stack(out).contiguous()


def build_inputs(size: int, batch: int, mesh):
    verts, tri, uv, tri_uv, _ = mesh
    g = torch.Generator().manual_seed(0)
    pos = clip_positions(verts, size, batch)
    attr = torch.rand(1, verts.shape[0], 3, generator=g)
    tex = torch.rand(1, 1024, 1024, 3, generator=g)
    return pos, tri, uv, tri_uv, attr, tex


def render_fast(pos, tri, uv, tri_uv, attr, tex, size, ctx):
    rast, _ = rasterize(pos, tri, (size, size), ctx=ctx)
    col, _ = interpolate(attr, rast, tri)
    tc, _ = interpolate(uv, rast, tri_uv)
    img = texture(tex, tc) * col
    return img


def render_reference(pos, tri, uv, tri_uv, attr, tex, size, ctx):
    rast, _ = rasterize(pos, tri, (size, size), ctx=ctx)
    col, _ = _interpolate_torch(attr, rast, tri, None, [])
    tc, _ = _interpolate_torch(uv, rast, tri_uv, None, [])
    return _texture_torch(tex, tc, "linear", "wrap") * col


def time_it(fn, *, min_run_time: float) -> dict:
    fn()  # warm-up (compile/cache load)
    m = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()).blocked_autorange(
        min_run_time=min_run_time
    )
    times = np.asarray(m.times) * 1e3
    q1, q3 = np.percentile(times, [25, 75]) if len(times) > 1 else (times[0], times[0])
    return {
        "median_ms": float(np.median(times)),
        "iqr_ms": float(q3 - q1),
        "min_ms": float(times.min()),
        "runs": int(len(times) * m.number_per_run),
    }


def case(size: int, batch: int, mesh, *, render, ctx, min_run_time: float) -> dict:
    pos, tri, uv, tri_uv, attr, tex = build_inputs(size, batch, mesh)
    img = render(pos, tri, uv, tri_uv, attr, tex, size, ctx)
    if img.shape != (batch, size, size, 3):
        raise RuntimeError(f"bench: unexpected output shape {tuple(img.shape)}")
    coverage = float((img.abs().sum(-1) > 0).float().mean())
    fwd = time_it(lambda: render(pos, tri, uv, tri_uv, attr, tex, size, ctx), min_run_time=min_run_time)

    p = pos.clone().requires_grad_(True)
    a = attr.clone().requires_grad_(True)
    t = tex.clone().requires_grad_(True)

    def fwd_bwd():
        p.grad = a.grad = t.grad = None
        out = render(p, tri, uv, tri_uv, a, t, size, ctx)
        (out * out).mean().backward()
        if p.grad is None or a.grad is None or t.grad is None or p.grad.shape != pos.shape:
            raise RuntimeError("bench: missing gradients")

    fb = time_it(fwd_bwd, min_run_time=min_run_time)
    return {"size": size, "batch": batch, "coverage": coverage, "forward": fwd, "forward_backward": fb}


def moderngl_forward(size: int, mesh, *, min_run_time: float) -> dict:
    """The same forward pass on OpenGL (Mesa llvmpipe, one thread): colour x bilinear texture.

    Each call uploads the positions and colours (they change between calls in real use), draws,
    and reads the image back as a tensor; the texture is uploaded once (favourable to GL).
    """
    os.environ.setdefault("LP_NUM_THREADS", "1")  # llvmpipe's rasterizer threads, read at context creation
    import moderngl  # noqa: PLC0415  (optional, only for this comparison)

    pos, tri, uv, tri_uv, attr, tex = build_inputs(size, 1, mesh)
    # GL needs one index per (position, uv) pair: unify the two topologies once.
    pairs = torch.stack([tri.long().reshape(-1), tri_uv.long().reshape(-1)], 1)
    unified, corner = torch.unique(pairs, dim=0, return_inverse=True)
    vi, ui = unified[:, 0], unified[:, 1]
    uvs = uv[ui].contiguous()
    ctx = moderngl.create_standalone_context(backend="egl")
    prog = ctx.program(
        vertex_shader="""#version 330
        in vec4 in_pos; in vec3 in_col; in vec2 in_uv; out vec3 col; out vec2 tc;
        void main() { gl_Position = in_pos; col = in_col; tc = in_uv; }""",
        fragment_shader="""#version 330
        uniform sampler2D tex; in vec3 col; in vec2 tc; out vec4 frag;
        void main() { frag = vec4(texture(tex, tc).rgb * col, 1.0); }""",
    )
    gl_tex = ctx.texture((tex.shape[2], tex.shape[1]), 3, tex[0].numpy().tobytes(), dtype="f4")
    gl_tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
    gl_tex.use(0)
    vbo_pos = ctx.buffer(reserve=vi.numel() * 16)
    vbo_col = ctx.buffer(reserve=vi.numel() * 12)
    vbo_uv = ctx.buffer(uvs.numpy().astype("f4").tobytes())
    ibo = ctx.buffer(corner.to(torch.int32).numpy().tobytes())
    vao = ctx.vertex_array(prog, [(vbo_pos, "4f", "in_pos"), (vbo_col, "3f", "in_col"), (vbo_uv, "2f", "in_uv")],
                           index_buffer=ibo, index_element_size=4)
    fbo = ctx.framebuffer(color_attachments=[ctx.renderbuffer((size, size), 4, dtype="f4")],
                          depth_attachment=ctx.depth_renderbuffer((size, size)))
    fbo.use()
    ctx.enable(moderngl.DEPTH_TEST)

    def render() -> torch.Tensor:
        vbo_pos.write(pos[0][vi].numpy().tobytes())
        vbo_col.write(attr[0][vi].numpy().tobytes())
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        vao.render(moderngl.TRIANGLES)
        data = fbo.read(components=3, dtype="f4")
        return torch.frombuffer(bytearray(data), dtype=torch.float32).view(1, size, size, 3)

    img = render()
    coverage = float((img.abs().sum(-1) > 0).float().mean())
    fwd = time_it(render, min_run_time=min_run_time)
    renderer = ctx.info.get("GL_RENDERER", "?")
    ctx.release()
    return {"backend": "moderngl", "size": size, "batch": 1, "coverage": coverage, "forward": fwd,
            "renderer": renderer, "lp_num_threads": os.environ.get("LP_NUM_THREADS")}


def first_call_seconds(cache_dir: str | None = None) -> dict:
    """Fresh-process cost of the first call of all four primitives with backward.

    With `cache_dir` (an empty NUMBA_CACHE_DIR) numba must compile everything (cold); without it
    the on-disk cache next to the package is used (the usual case after the first run).
    """
    code = (
        "import time; t0 = time.perf_counter(); import torch; t1 = time.perf_counter();"
        "import affectsynth.render as r; t2 = time.perf_counter();"
        "pos = torch.tensor([[[-1., -1, 0, 1], [1, -1, 0, 1], [-1, 1, 0, 1]]]);"
        "tri = torch.tensor([[0, 1, 2]], dtype=torch.int32);"
        "p = pos.clone().requires_grad_(True); rast, _ = r.rasterize(p, tri, (8, 8));"
        "c, _ = r.interpolate(pos[..., :2].contiguous(), rast, tri); img = r.texture(torch.rand(1, 4, 4, 3), c);"
        "r.antialias(img, rast, p, tri).sum().backward(); t3 = time.perf_counter();"
        "print(t1 - t0, t2 - t1, t3 - t2)"
    )
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    torch_s, import_s, first_s = (float(x) for x in out.stdout.split())
    return {"import_torch_s": torch_s, "import_render_s": import_s, "first_call_s": first_s}


def _row(name: str, r: dict) -> str:
    f, fb = r["forward"], r["forward_backward"]
    return (f"{name:10s} {r['size']:5d} {r['batch']:2d} {r['coverage']:6.2f} "
            f"{f['median_ms']:10.2f} ({f['iqr_ms']:5.2f}) [{f['min_ms']:6.2f}] "
            f"{fb['median_ms']:12.2f} ({fb['iqr_ms']:5.2f}) [{fb['min_ms']:6.2f}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write results to this JSON file")
    ap.add_argument("--min-run-time", type=float, default=0.5, help="seconds per measurement")
    ap.add_argument("--quick", action="store_true", help="only 256 x batch 1 (plus the reference)")
    ap.add_argument("--no-reference", action="store_true", help="skip the pure-torch reference")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    mesh = load_mesh()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    import numba

    meta = {
        "commit": commit,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numba": numba.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "mesh": mesh[4],
        "vertices": int(mesh[0].shape[0]),
        "triangles": int(mesh[1].shape[0]),
        "texture": "1024x1024x3",
    }
    print(f"# render bench  commit={commit} torch={torch.__version__} numba={numba.__version__} "
          f"threads={torch.get_num_threads()} cpu={meta['cpu']} x{os.cpu_count()}")
    print(f"# mesh {meta['mesh']}: {meta['vertices']} vertices, {meta['triangles']} triangles; texture 1024^2 RGB")
    print("# pipeline: rasterize + interpolate(rgb attr) + interpolate(uv, uv topology) + texture, "
          "loss=mean(img^2) -> grads to pos, attr, tex")

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cold = first_call_seconds(tmp)
    first_call_seconds()  # make sure the package cache is populated
    startup = first_call_seconds()
    startup["first_call_cold_compile_s"] = cold["first_call_s"]
    print(f"# fresh process: import torch {startup['import_torch_s']:.2f} s, import affectsynth.render "
          f"{startup['import_render_s']:.3f} s; first call of all 4 primitives + backward: "
          f"{startup['first_call_s']:.2f} s with the numba cache, {cold['first_call_s']:.1f} s compiling cold")

    sizes = [256] if args.quick else [256, 512]
    batches = [1] if args.quick else [1, 8]
    results = []
    cpu = RasterizeCpuContext()
    header = (f"{'backend':10s} {'res':>5s} {'B':>2s} {'cover':>6s} {'fwd ms (IQR) [min]':>26s} "
              f"{'fwd+bwd ms (IQR) [min]':>28s}")
    print(header)
    for size in sizes:
        for batch in batches:
            r = case(size, batch, mesh, render=render_fast, ctx=cpu, min_run_time=args.min_run_time)
            r["backend"] = "cpu"
            results.append(r)
            print(_row("cpu", r))
    if not args.no_reference:
        ref = case(256, 1, mesh, render=render_reference, ctx=RasterizeReferenceContext(), min_run_time=args.min_run_time)
        ref["backend"] = "reference"
        results.append(ref)
        fast = next(r for r in results if r["backend"] == "cpu" and r["size"] == 256 and r["batch"] == 1)
        print(_row("reference", ref))
        print(f"# speed-up cpu vs pure-torch reference at 256, B=1: forward "
              f"{ref['forward']['median_ms'] / fast['forward']['median_ms']:.1f}x, forward+backward "
              f"{ref['forward_backward']['median_ms'] / fast['forward_backward']['median_ms']:.1f}x")
    if importlib.util.find_spec("moderngl") is None:
        print("# moderngl: not installed, skipped (pip install moderngl; needs system EGL/Mesa)")
    else:
        fast = next(r for r in results if r["backend"] == "cpu" and r["size"] == 256 and r["batch"] == 1)
        try:
            gl = moderngl_forward(256, mesh, min_run_time=args.min_run_time)
        except Exception as exc:  # noqa: BLE001  (any GL/EGL failure only skips this optional row)
            print(f"# moderngl: installed but unusable here ({type(exc).__name__}: {exc}); skipped")
        else:
            results.append(gl)
            print(f"# moderngl ({gl['renderer']}, forward only, not differentiable) 256 B=1: "
                  f"{gl['forward']['median_ms']:.2f} ms (IQR {gl['forward']['iqr_ms']:.2f}); cpu is "
                  f"{gl['forward']['median_ms'] / fast['forward']['median_ms']:.1f}x faster")
    fast = next(r for r in results if r["backend"] == "cpu" and r["size"] == 256 and r["batch"] == 1)
    print(f"# targets at 256, B=1, one thread: forward median {fast['forward']['median_ms']:.2f} / min "
          f"{fast['forward']['min_ms']:.2f} ms (<= 5), forward+backward median "
          f"{fast['forward_backward']['median_ms']:.2f} / min {fast['forward_backward']['min_ms']:.2f} ms (<= 20)")
    print(f"# load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machine)")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "startup": startup, "results": results,
                                         "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2))
        print(f"# wrote {args.json}")


if __name__ == "__main__":
    main()
