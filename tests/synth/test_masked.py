"""`masked_rows` is ``x[mask]``: same values, same order, same reductions."""

from __future__ import annotations

import pytest
import torch

from affectsynth._masked import masked_rows


@pytest.mark.parametrize("shape,mask_dims", [((256, 256, 3), 2), ((7, 5), 2), ((9, 4, 2), 1), ((0, 3), 1), ((1, 1, 1), 2)])
def test_equals_boolean_indexing(shape, mask_dims):
    g = torch.Generator().manual_seed(len(shape) + mask_dims)
    x = torch.rand(*shape, generator=g)
    mask = torch.rand(*shape[:mask_dims], generator=g) > 0.4
    got = masked_rows(x, mask)
    assert got.shape == x[mask].shape and torch.equal(got, x[mask])
    assert torch.equal(got.mean(0), x[mask].mean(0)) or got.shape[0] == 0  # the mean bit for bit
    assert torch.equal(masked_rows(x.permute(*range(x.ndim)), mask), x[mask])


def test_non_contiguous_and_grad():
    x = torch.rand(6, 8, 3)[:, ::2]
    mask = torch.rand(6, 4) > 0.5
    assert torch.equal(masked_rows(x, mask), x[mask])
    xg = torch.rand(5, 3, requires_grad=True)
    masked_rows(xg, torch.tensor([True, False, True, True, False])).sum().backward()
    assert torch.equal(xg.grad, torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])[:, None].expand(5, 3))


def test_errors():
    with pytest.raises(ValueError, match="masked_rows"):
        masked_rows(torch.rand(4, 3), torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="masked_rows"):
        masked_rows(torch.rand(4, 3), torch.ones(4))
