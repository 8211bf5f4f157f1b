"""Pure-torch brute-force rasterization and antialiasing, slow, used as a test reference."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["visibility_reference", "rasterize_reference", "antialias_reference"]

_DEPTH_SCALE = 2.0**30  # same quantisation as render._kernels.visibility.DEPTH_SCALE / DEPTH_MAX
_DEPTH_MAX = 2.0**31 - 1


def _screen(pos: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    w = pos[..., 3]
    x = (pos[..., 0] / w + 1.0) * (0.5 * width)
    y = (pos[..., 1] / w + 1.0) * (0.5 * height)
    z = pos[..., 2] / w
    return x, y, z


def _quantised_depth(zw: Tensor) -> Tensor:
    """z/w in [-1, 1] as the integer depth the CPU kernel compares (31-bit fixed point)."""
    return torch.floor(((zw + 1.0) * _DEPTH_SCALE).clamp(0.0, _DEPTH_MAX))


def visibility_reference(
    pos: Tensor,
    tri: Tensor,
    height: int,
    width: int,
    *,
    pos_index: Tensor,
    tri_start: Tensor,
    tri_count: Tensor,
    max_pairs: int = 1 << 22,
) -> Tensor:
    """Triangle id per pixel by testing each triangle against every pixel of its bounding box.

    Vectorised pure torch in float64: candidate (triangle, pixel) pairs are enumerated, tested
    with the same coverage rule as the compiled kernel (inclusive edges, w > 0 at all vertices,
    -1 <= z/w <= 1), and resolved per pixel by the smallest z/w quantised to steps of 2^-30
    (the compiled kernel's depth keys), ties to the lower id. Written independently of it.

    Args:
        pos: [Bp, V, 4] clip-space positions.
        tri: [T, 3] int vertex indices.
        height: H.
        width: W.
        pos_index: [B] int64, pos batch per image.
        tri_start: [B] int64, first triangle per image.
        tri_count: [B] int64, triangle count per image.
        max_pairs: candidate pairs processed at once (memory bound).

    Returns:
        [B, H, W] int32 triangle_id + 1, 0 = empty.
    """
    dev = pos.device
    nb = int(pos_index.numel())
    out = torch.zeros(nb, height, width, dtype=torch.int32, device=dev)
    for b in range(nb):
        p = pos[int(pos_index[b])].detach().to(torch.float64)
        x, y, z = _screen(p, height, width)
        s, n = int(tri_start[b]), int(tri_count[b])
        t_all = tri[s : s + n].long()
        ok_w = (p[:, 3][t_all] > 0).all(dim=1)
        xs, ys = x[t_all], y[t_all]
        j0 = torch.ceil(xs.min(1).values - 0.5).clamp(0, width)
        j1 = torch.floor(xs.max(1).values - 0.5).clamp(-1, width - 1)
        r0 = torch.ceil(ys.min(1).values - 0.5).clamp(0, height)
        r1 = torch.floor(ys.max(1).values - 0.5).clamp(-1, height - 1)
        bw = (j1 - j0 + 1).clamp(min=0)
        bh = (r1 - r0 + 1).clamp(min=0)
        ok = ok_w & torch.isfinite(bw) & torch.isfinite(bh)
        count = torch.where(ok, bw * bh, torch.zeros_like(bw)).long()
        best_z = torch.full((height * width,), float("inf"), dtype=torch.float64, device=dev)
        cand_pix, cand_id, cand_z = [], [], []
        # Chunk triangles so that each chunk enumerates at most ~max_pairs pixels.
        cum = torch.cumsum(count, 0)
        start = 0
        while start < n:
            base = int(cum[start - 1]) if start else 0
            stop = int(torch.searchsorted(cum, torch.tensor(base + max_pairs, device=dev), right=True))
            stop = max(stop, start + 1)
            tid = torch.arange(start, min(stop, n), device=dev)
            cnt = count[tid]
            pair_t = torch.repeat_interleave(tid, cnt)
            if pair_t.numel():
                first = torch.cumsum(cnt, 0) - cnt
                local = torch.arange(pair_t.numel(), device=dev) - torch.repeat_interleave(first, cnt)
                bw_l = bw[pair_t].long()
                col = j0[pair_t].long() + local % bw_l
                row = r0[pair_t].long() + torch.div(local, bw_l, rounding_mode="floor")
                gx = col.to(torch.float64) + 0.5
                gy = row.to(torch.float64) + 0.5
                vx, vy, vz = xs[pair_t], ys[pair_t], z[t_all[pair_t]]
                x0, x1, x2 = vx.unbind(1)
                y0, y1, y2 = vy.unbind(1)
                area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
                e0 = (x1 - gx) * (y2 - gy) - (x2 - gx) * (y1 - gy)
                e1 = (x2 - gx) * (y0 - gy) - (x0 - gx) * (y2 - gy)
                e2 = (x0 - gx) * (y1 - gy) - (x1 - gx) * (y0 - gy)
                inside_pos = (e0 >= 0) & (e1 >= 0) & (e2 >= 0) & (area > 0)
                inside_neg = (e0 <= 0) & (e1 <= 0) & (e2 <= 0) & (area < 0)
                zz = (e0 * vz[:, 0] + e1 * vz[:, 1] + e2 * vz[:, 2]) / area
                keep = (inside_pos | inside_neg) & (zz >= -1) & (zz <= 1) & torch.isfinite(area)
                zz = _quantised_depth(zz)
                pix = (row * width + col)[keep]
                cand_pix.append(pix)
                cand_id.append(pair_t[keep] + s)
                cand_z.append(zz[keep])
                best_z.scatter_reduce_(0, pix, zz[keep], reduce="amin")
            start = min(stop, n)
        if not cand_pix:
            continue
        pix = torch.cat(cand_pix)
        ids = torch.cat(cand_id)
        zz = torch.cat(cand_z)
        win = zz == best_z[pix]
        best_id = torch.full((height * width,), n + s + 1, dtype=torch.int64, device=dev)
        best_id.scatter_reduce_(0, pix[win], ids[win], reduce="amin")
        best_id = torch.where(best_id > n + s, torch.zeros_like(best_id), best_id + 1)
        out[b] = best_id.view(height, width).to(torch.int32)
    return out


def rasterize_reference(pos: Tensor, tri: Tensor, resolution: tuple[int, int]) -> Tensor:
    """Full rast output computed by screen-space perspective-correct interpolation (float64).

    Independent of `affectsynth.render.rasterize`'s homogeneous formulation; for tests.

    Args:
        pos: [B, V, 4] clip-space positions.
        tri: [T, 3] int vertex indices.
        resolution: (H, W).

    Returns:
        [B, H, W, 4] float64 (u, v, z/w, triangle_id + 1).
    """
    height, width = resolution
    nb = pos.shape[0]
    tcount = tri.shape[0]
    idx = torch.arange(nb, dtype=torch.int64)
    ids = visibility_reference(
        pos, tri, height, width, pos_index=idx,
        tri_start=torch.zeros(nb, dtype=torch.int64), tri_count=torch.full((nb,), tcount),
    )
    out = torch.zeros(nb, height, width, 4, dtype=torch.float64)
    for b in range(nb):
        p = pos[b].detach().to(torch.float64)
        x, y, z = _screen(p, height, width)
        for r in range(height):
            for c in range(width):
                t = int(ids[b, r, c]) - 1
                if t < 0:
                    continue
                i = tri[t].long()
                gx, gy = c + 0.5, r + 0.5
                xs, ys, ws = x[i], y[i], p[i, 3]
                area = (xs[1] - xs[0]) * (ys[2] - ys[0]) - (xs[2] - xs[0]) * (ys[1] - ys[0])
                s0 = ((xs[1] - gx) * (ys[2] - gy) - (xs[2] - gx) * (ys[1] - gy)) / area
                s1 = ((xs[2] - gx) * (ys[0] - gy) - (xs[0] - gx) * (ys[2] - gy)) / area
                s2 = 1.0 - s0 - s1
                # Perspective correction: clip-space weights are screen weights / w, renormalised.
                q = torch.stack([s0 / ws[0], s1 / ws[1], s2 / ws[2]])
                q = q / q.sum()
                out[b, r, c, 0] = q[0]
                out[b, r, c, 1] = q[1]
                out[b, r, c, 2] = s0 * z[i[0]] + s1 * z[i[1]] + s2 * z[i[2]]
                out[b, r, c, 3] = t + 1
    return out


def antialias_reference(color: Tensor, rast: Tensor, pos: Tensor, tri: Tensor) -> Tensor:
    """nvdiffrast's antialias forward pass written as plain Python loops (tiny images only).

    Args:
        color: [B, H, W, C] colours.
        rast: [B, H, W, 4] from rasterize.
        pos: [B, V, 4] clip-space positions.
        tri: [T, 3] int vertex indices.

    Returns:
        [B, H, W, C] float64 antialiased colours.
    """
    nb, height, width, _ = color.shape
    col = color.detach().to(torch.float64)
    out = col.clone()
    tl = tri.long().tolist()
    # Edge -> the opposite vertices of the triangles sharing it.
    edge_opp: dict[tuple[int, int], list[int]] = {}
    for t in tl:
        for k in range(3):
            a, b = t[(k + 1) % 3], t[(k + 2) % 3]
            edge_opp.setdefault((min(a, b), max(a, b)), []).append(t[k])

    def opposite(a: int, b: int, own: int) -> int:
        lst = edge_opp.get((min(a, b), max(a, b)), [])
        others = [o for o in lst if o != own]
        return others[0] if len(lst) >= 2 and others else -1

    ids = rast[..., 3].round().long() - 1
    zw = rast[..., 2].double()
    xh, yh = 0.5 * width, 0.5 * height
    for b in range(nb):
        p = pos[b if pos.shape[0] > 1 else 0].detach().double().tolist()
        for py in range(height):
            for px in range(width):
                for d in (0, 1):
                    qx, qy = (px + 1, py) if d == 0 else (px, py + 1)
                    if qx >= width or qy >= height:
                        continue
                    t0, t1 = int(ids[b, py, px]), int(ids[b, qy, qx])
                    if t0 == t1:
                        continue
                    t = t0 if t0 >= 0 else t1
                    if t0 >= 0 and t1 >= 0:
                        t = t0 if zw[b, py, px] < zw[b, qy, qx] else t1
                    rx, ry, ds = (px, py, 1.0) if t == t0 else (qx, qy, -1.0)
                    v = tl[t]
                    fx, fy = rx + 0.5 - xh, ry + 0.5 - yh

                    def scr(i: int) -> tuple[float, float]:
                        return p[i][0] / p[i][3] * xh - fx, p[i][1] / p[i][3] * yh - fy

                    pts = [scr(i) for i in v]
                    opts = []
                    for k in range(3):
                        o = opposite(v[(k + 1) % 3], v[(k + 2) % 3], v[k])
                        opts.append(pts[k] if o < 0 else scr(o))

                    def orient(a, b, c):
                        return (b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])

                    bb = orient(pts[0], pts[1], pts[2])
                    best, best_dc = -1, -float("inf")
                    for k in range(3):
                        pa, pb = pts[(k + 1) % 3], pts[(k + 2) % 3]
                        if d == 1:
                            pa, pb = (pa[1], pa[0]), (pb[1], pb[0])
                        if (pa[1] >= 0) == (pb[1] >= 0):
                            continue
                        dc = ds * (pa[0] * (pb[1] - pa[1]) - pa[1] * (pb[0] - pa[0])) / (pb[1] - pa[1])
                        if dc > best_dc:
                            best, best_dc = k, dc
                    if best < 0:
                        continue
                    k = best
                    ak = orient(opts[k], pts[(k + 1) % 3], pts[(k + 2) % 3])
                    pa, pb = pts[(k + 1) % 3], pts[(k + 2) % 3]
                    if d == 1:
                        pa, pb = (pa[1], pa[0]), (pb[1], pb[0])
                    if (ak >= 0) != (bb >= 0) or abs(pb[1] - pa[1]) < abs(pb[0] - pa[0]):
                        continue
                    if not (-0.0625 < best_dc < 1.0625):
                        continue
                    dc = min(max(best_dc, 0.0), 1.0)
                    alpha = ds * (0.5 - dc)
                    delta = alpha * (col[b, qy, qx] - col[b, py, px])
                    if alpha > 0:
                        out[b, py, px] += delta
                    else:
                        out[b, qy, qx] += delta
    return out
