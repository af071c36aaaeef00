"""The LGC sketch against exact per-sample gradients (torch.func) on tiny conv nets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from selection.sketch import LGCSketcher, lgc_sketch, sketch_factors


class TinyNet(nn.Module):
    """conv -> BN -> ReLU -> last conv (configurable) -> BN -> ReLU(inplace) (+ skip) -> pool -> head."""

    def __init__(self, last: dict, skip: bool = False, classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.conv = nn.Conv2d(4, 5, **last)
        self.bn = nn.BatchNorm2d(5)
        self.relu = nn.ReLU(inplace=True)
        self.skip = nn.Conv2d(4, 5, 1, stride=last.get("stride", 1)) if skip else None
        self.feature_dim = 5
        self.head = nn.Linear(5, classes)

    @property
    def last_conv(self) -> nn.Conv2d:
        return self.conv

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        out = self.relu(self.bn(self.conv(h)))
        if self.skip is not None:
            out = out + self.skip(h)[..., : out.shape[-2], : out.shape[-1]]
        return out.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def _model(last: dict, skip: bool = False, seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    model = TinyNet(last, skip).double()
    # non-trivial running statistics, so eval-mode BN is not the identity
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 3, 9, 9, dtype=torch.float64))
    return model.eval()


def _exact_grads(model: TinyNet, x: torch.Tensor, heads: torch.Tensor) -> np.ndarray:
    """(N, R * |W|): per-sample gradients of r . phi(x) w.r.t. last_conv.weight by torch.func."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    name = next(k for k, v in model.named_parameters() if v is model.last_conv.weight)

    def features(w: torch.Tensor, xi: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        state = {**params, **buffers, name: w}
        phi = functional_call(
            _FeatureView(model), {f"m.{k}": v for k, v in state.items()}, (xi[None],)
        )
        return phi[0] @ r

    blocks = []
    for r in heads:
        g = vmap(grad(features), in_dims=(None, 0, None))(params[name], x, r)
        blocks.append(g.reshape(x.shape[0], -1).numpy())
    return np.concatenate(blocks, axis=1)


class _FeatureView(nn.Module):
    """forward = m.forward_features, so functional_call differentiates the features."""

    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m.forward_features(x)


# (last conv, residual branch): 3x3 and 1x1 like ResNets / DenseNets / EfficientNet, plus the rest
LAST_CONVS = [
    (dict(kernel_size=3, padding=1), True),
    (dict(kernel_size=3, stride=2, padding=1), False),
    (dict(kernel_size=1), True),
    (dict(kernel_size=1), False),
    (dict(kernel_size=3, dilation=2, padding=2, bias=False), True),
    (dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)), False),
    (dict(kernel_size=3, padding=1, padding_mode="reflect"), True),
]


@pytest.mark.parametrize(("last", "skip"), LAST_CONVS)
def test_identity_sketch_equals_exact_per_sample_gradients(last: dict, skip: bool) -> None:
    model = _model(last, skip)
    x = torch.randn(7, 3, 9, 9, dtype=torch.float64)
    sketcher = LGCSketcher(model, heads=3, seed=5, projection="identity")
    feats, sketch = sketcher(x)
    exact = _exact_grads(model, x, sketcher.head_vectors)
    assert sketch.shape == exact.shape == (7, 3 * model.conv.weight.numel())
    np.testing.assert_allclose(sketch.numpy(), exact, rtol=1e-6, atol=1e-9 * np.abs(exact).max())
    with torch.no_grad():
        np.testing.assert_allclose(feats.numpy(), model.forward_features(x).numpy(), rtol=1e-12)


def test_batching_and_state_restored() -> None:
    model = _model(dict(kernel_size=3, padding=1), skip=True)
    model.train()
    model.stem[0].weight.requires_grad_(False)
    x = torch.randn(10, 3, 9, 9, dtype=torch.float64)
    whole = lgc_sketch(model, x, heads=2, dim=6, seed=1, batch_size=10)
    pieces = lgc_sketch(model, x, heads=2, dim=6, seed=1, batch_size=3)
    assert whole.dtype == np.float64 and whole.shape == (10, 2 * 6)
    np.testing.assert_allclose(pieces, whole, rtol=1e-10)
    # training flag and requires_grad flags are what they were
    assert model.training
    assert not model.stem[0].weight.requires_grad and model.conv.weight.requires_grad
    # running statistics untouched (BN ran in eval mode)
    before = model.bn.running_mean.clone()
    lgc_sketch(model, x, heads=1, dim=4)
    assert torch.equal(before, model.bn.running_mean)


def test_same_seed_same_sketch_other_seed_differs() -> None:
    model = _model(dict(kernel_size=1))
    x = torch.randn(5, 3, 9, 9, dtype=torch.float64)
    a = lgc_sketch(model, x, heads=2, dim=4, seed=3)
    b = lgc_sketch(model, x, heads=2, dim=4, seed=3)
    c = lgc_sketch(model, x, heads=2, dim=4, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_random_projection_gram_is_unbiased() -> None:
    model = _model(dict(kernel_size=3, stride=2, padding=1), skip=True)
    x = torch.randn(6, 3, 9, 9, dtype=torch.float64)
    exact_sketcher = LGCSketcher(model, heads=2, seed=0, projection="identity")
    exact = exact_sketcher(x)[1].numpy()
    gram = exact @ exact.T
    grams = []
    for s in range(200):
        sketcher = LGCSketcher(model, heads=2, dim=6, seed=s)
        sketcher.head_vectors = (
            exact_sketcher.head_vectors
        )  # the same heads: only the projections vary
        g = sketcher(x)[1].numpy()
        grams.append(g @ g.T)
    grams = np.array(grams)
    mean, sem = grams.mean(0), grams.std(0, ddof=1) / np.sqrt(len(grams))
    # every entry of the mean within 4.5 standard errors of the exact Gram (a biased sketch fails)
    assert (np.abs(mean - gram) < 4.5 * sem).all(), np.abs(mean - gram) / sem
    # one sketch (dim 6 << 180 weights) is far off; the average of 200 is much closer
    assert np.abs(mean - gram).max() < 0.3 * np.abs(grams - gram).max(axis=(1, 2)).mean()
    # a projection without the 1/sqrt(d) scaling (a factor d1 * d2 = 6) would fail the check above
    assert not (np.abs(6 * mean - gram) < 4.5 * sem).all()


def test_lgc_score_from_identity_sketch_matches_naive_gradient_gram_correlation() -> None:
    selection = pytest.importorskip("selection")
    if "lgc" not in selection.available():
        pytest.skip("the lgc score is not registered")
    model = _model(dict(kernel_size=3, padding=1), skip=True)
    x = torch.randn(12, 3, 9, 9, dtype=torch.float64)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 0, 1])
    sketcher = LGCSketcher(model, heads=4, seed=2, projection="identity")
    grads = sketcher(x)[1].numpy()
    exact = _exact_grads(model, x, sketcher.head_vectors)
    w = model.conv.weight.numel()
    kernel = sum(exact[:, r * w : (r + 1) * w] @ exact[:, r * w : (r + 1) * w].T for r in range(4))
    y = 2.0 * (labels[:, None] == labels[None, :]) - 1.0
    naive = np.corrcoef(kernel.ravel(), y.ravel())[0, 1]
    assert abs(selection.score("lgc", grads=grads, labels=labels) - naive) < 1e-10


def test_sketch_factors_and_bad_input() -> None:
    assert sketch_factors(64) == (8, 8)
    assert sketch_factors(128) == (8, 16)
    assert sketch_factors(7) == (1, 7)
    for bad in (0, -4, 2.5, True):
        with pytest.raises(ValueError, match="dim"):
            sketch_factors(bad)
    model = _model(dict(kernel_size=1))
    with pytest.raises(ValueError, match="projection"):
        LGCSketcher(model, projection="srht")
    with pytest.raises(ValueError, match="heads"):
        LGCSketcher(model, heads=0)
    model.conv = nn.Conv2d(4, 4, 3, padding=1, groups=2).double()
    with pytest.raises(ValueError, match="groups=2"):
        LGCSketcher(model)
    with pytest.raises(ValueError, match="no images"):
        lgc_sketch(_model(dict(kernel_size=1)), [], heads=1)
