"""The LGC gradients against exact per-sample gradients (torch.func): exact path, count sketch, LGC."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

import selection
from selection.sketch import (
    DEFAULT_DIM,
    DEFAULT_EXACT_MAX,
    DEFAULT_HEADS,
    LGCSketcher,
    lgc_sketch,
)
from zoo.models import create_model


class TinyNet(nn.Module):
    """conv -> BN -> ReLU -> last conv (configurable) -> BN -> ReLU(inplace) (+ skip) -> pool -> head."""

    def __init__(
        self, last: dict, skip: bool = False, classes: int = 3, c_in: int = 4, c_out: int = 5
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c_in, 3, padding=1), nn.BatchNorm2d(c_in), nn.ReLU())
        self.conv = nn.Conv2d(c_in, c_out, **last)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.skip = nn.Conv2d(c_in, c_out, 1, stride=last.get("stride", 1)) if skip else None
        self.feature_dim = c_out
        self.head = nn.Linear(c_out, classes)

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


def _model(last: dict, skip: bool = False, seed: int = 0, **widths: int) -> TinyNet:
    torch.manual_seed(seed)
    model = TinyNet(last, skip, **widths).double()
    # non-trivial running statistics, so eval-mode BN is not the identity
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 3, 9, 9, dtype=torch.float64))
    return model.eval()


def _exact_grads(model: nn.Module, x: torch.Tensor, heads: torch.Tensor) -> np.ndarray:
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
        g = vmap(grad(features), in_dims=(None, 0, None))(params[name], x, r.to(x.dtype))
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
    (dict(kernel_size=(3, 1), padding="same", dilation=2), False),
]


@pytest.mark.parametrize(("last", "skip"), LAST_CONVS)
def test_identity_sketch_equals_exact_per_sample_gradients(last: dict, skip: bool) -> None:
    model = _model(last, skip)
    x = torch.randn(7, 3, 9, 9, dtype=torch.float64)
    sketcher = LGCSketcher(model, heads=3, seed=5, projection="identity")
    feats, sketch = sketcher(x)
    assert sketcher.exact
    exact = _exact_grads(model, x, sketcher.head_vectors)
    assert sketch.shape == exact.shape == (7, 3 * model.conv.weight.numel())
    np.testing.assert_allclose(sketch.numpy(), exact, rtol=1e-6, atol=1e-9 * np.abs(exact).max())
    with torch.no_grad():
        np.testing.assert_allclose(feats.numpy(), model.forward_features(x).numpy(), rtol=1e-12)


def _kernel(g: np.ndarray) -> np.ndarray:
    return g @ g.T


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _naive_lgc(kernel: np.ndarray, labels: np.ndarray) -> float:
    """The paper's LGC: Pearson correlation of the N^2 entries of K and Y = 2S - 1."""
    return _corr(kernel, 2.0 * (labels[:, None] == labels[None, :]) - 1.0)


def _class_images(n: int, classes: int, size: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Images = class template + noise, so that LGC is clearly away from 0."""
    gen = torch.Generator().manual_seed(seed)
    labels = np.arange(n) % classes
    templates = torch.randn(classes, 3, size, size, generator=gen)
    x = templates[torch.as_tensor(labels)] + 0.7 * torch.randn(n, 3, size, size, generator=gen)
    return x, labels


def _zoo_model(arch: str) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10)
    # non-trivial BN running statistics (eval-mode BN is then not the identity)
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 32, 32))
    return model.eval()


@pytest.mark.parametrize("arch", ["densenet_mini", "resnet8"])
def test_exact_path_on_zoo_models_equals_torch_func(arch: str) -> None:
    model = _zoo_model(arch)
    x = torch.randn(5, 3, 32, 32)
    sketcher = LGCSketcher(model, heads=2, seed=1, projection="exact")
    assert sketcher.exact and sketcher.projection == "identity"
    exact = _exact_grads(model, x, sketcher.head_vectors)
    got = sketcher(x)[1].numpy()
    assert got.shape == exact.shape == (5, 2 * model.last_conv.weight.numel())
    # float32 model: agreement to ~1e-5 of the gradients' scale
    np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-5 * np.abs(exact).max())


def test_default_paths_exact_for_small_layers_count_sketch_above() -> None:
    small = _zoo_model("densenet_mini")  # 12 x 48 x 3 x 3 = 5184 weights
    big = _zoo_model("resnet8")  # 64 x 64 x 3 x 3 = 36864 weights
    assert small.last_conv.weight.numel() <= DEFAULT_EXACT_MAX < big.last_conv.weight.numel()
    x = torch.randn(3, 3, 32, 32)
    g_small, g_big = lgc_sketch(small, x), lgc_sketch(big, x)
    assert g_small.shape == (3, DEFAULT_HEADS * 5184)
    assert g_big.shape == (3, DEFAULT_HEADS * DEFAULT_DIM)
    np.testing.assert_array_equal(g_small, lgc_sketch(small, x, projection="identity"))
    np.testing.assert_array_equal(g_big, lgc_sketch(big, x, projection="countsketch"))


def test_default_sketch_keeps_kernel_and_lgc_of_torch_func_gradients() -> None:
    """Default settings on the zoo ResNet-8 (count-sketch path) against exact torch.func gradients."""
    model = _zoo_model("resnet8")
    x, labels = _class_images(24, 3, 32, seed=3)
    grads = lgc_sketch(model, x)
    sketcher = LGCSketcher(model)
    assert not sketcher.exact
    exact = _exact_grads(model, x, sketcher.head_vectors).astype(np.float64)
    k_exact, k_sketch = _kernel(exact), _kernel(grads)
    lgc_exact = _naive_lgc(k_exact, labels)
    assert lgc_exact > 0.05  # a real signal, so the ratio below means something
    assert _corr(k_sketch, k_exact) >= 0.99
    lgc = selection.score("lgc", grads=grads, labels=labels)
    assert abs(lgc / lgc_exact - 1) < 0.05
    # the former 8 x 8 Kronecker sketch fails the same check (this test can tell them apart)
    gen = torch.Generator().manual_seed(0)
    torch.randn(4, sketcher.feature_dim, generator=gen, dtype=torch.float64)
    p1 = torch.randn(8, 64, generator=gen, dtype=torch.float64).numpy() / np.sqrt(8)
    p2 = torch.randn(8, 576, generator=gen, dtype=torch.float64).numpy() / np.sqrt(8)
    rows = exact.reshape(24, 4, 64, 576)
    kron = np.einsum("dc,nrcp,ep->nrde", p1, rows, p2).reshape(24, -1)
    assert _corr(_kernel(kron), k_exact) < 0.95


def test_count_sketch_equals_explicit_sparse_projection_of_exact_rows() -> None:
    model = _model(dict(kernel_size=3, padding=1), skip=True, c_in=6, c_out=7)
    x = torch.randn(9, 3, 9, 9, dtype=torch.float64)
    sketcher = LGCSketcher(model, heads=3, dim=16, seed=4, projection="countsketch")
    got = sketcher(x)[1].numpy()
    exact = _exact_grads(model, x, sketcher.head_vectors)
    w = model.conv.weight.numel()
    expected = []
    for r in range(3):
        proj = np.zeros((w, 16))  # one +-1 per row: coordinate j -> column h_r(j)
        proj[np.arange(w), sketcher.buckets[r].numpy()] = sketcher.signs[r].numpy()
        expected.append(exact[:, r * w : (r + 1) * w] @ proj)
    np.testing.assert_allclose(got, np.concatenate(expected, axis=1), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("projection", ["identity", "countsketch"])
def test_chunking_does_not_change_the_output(projection: str) -> None:
    model = _model(dict(kernel_size=3, padding=1), skip=True, c_in=6, c_out=7)
    x = torch.randn(10, 3, 9, 9, dtype=torch.float64)
    whole = lgc_sketch(model, x, heads=2, dim=32, projection=projection)
    # 100 numbers per block: 1 output channel (54 weights) of 1 sample at a time
    small = lgc_sketch(model, x, heads=2, dim=32, projection=projection, chunk_elements=100)
    # 200: 3 channels; 2000: all 7 channels of 5 samples
    for chunk in (100, 200, 2000):
        s = LGCSketcher(model, heads=2, dim=32, projection=projection, chunk_elements=chunk)
        assert s._blocks(10) == {100: (1, 1), 200: (1, 3), 2000: (5, 7)}[chunk]
    np.testing.assert_allclose(small, whole, rtol=1e-12, atol=1e-14 * np.abs(whole).max())
    mid = lgc_sketch(model, x, heads=2, dim=32, projection=projection, chunk_elements=2000)
    np.testing.assert_allclose(mid, whole, rtol=1e-12, atol=1e-14 * np.abs(whole).max())


def test_batching_and_state_restored() -> None:
    model = _model(dict(kernel_size=3, padding=1), skip=True)
    model.train()
    model.stem[0].weight.requires_grad_(False)
    x = torch.randn(10, 3, 9, 9, dtype=torch.float64)
    whole = lgc_sketch(model, x, heads=2, dim=6, seed=1, batch_size=10, projection="countsketch")
    pieces = lgc_sketch(model, x, heads=2, dim=6, seed=1, batch_size=3, projection="countsketch")
    assert whole.dtype == np.float64 and whole.shape == (10, 2 * 6)
    np.testing.assert_allclose(pieces, whole, rtol=1e-10)
    # training flag and requires_grad flags are what they were
    assert model.training
    assert not model.stem[0].weight.requires_grad and model.conv.weight.requires_grad
    # running statistics untouched (BN ran in eval mode)
    before = model.bn.running_mean.clone()
    lgc_sketch(model, x, heads=1, dim=4)
    assert torch.equal(before, model.bn.running_mean)


def test_same_seed_same_sketch_other_seed_differs_heads_shared_with_exact() -> None:
    model = _model(dict(kernel_size=1))
    x = torch.randn(5, 3, 9, 9, dtype=torch.float64)
    a = lgc_sketch(model, x, heads=2, dim=4, seed=3, projection="countsketch")
    b = lgc_sketch(model, x, heads=2, dim=4, seed=3, projection="countsketch")
    c = lgc_sketch(model, x, heads=2, dim=4, seed=4, projection="countsketch")
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # the heads depend on the seed only, not on the projection
    heads = [
        LGCSketcher(model, seed=3, projection=p).head_vectors for p in ("exact", "countsketch")
    ]
    assert torch.equal(*heads)


def test_count_sketch_gram_is_unbiased() -> None:
    model = _model(dict(kernel_size=3, stride=2, padding=1), skip=True)
    x = torch.randn(6, 3, 9, 9, dtype=torch.float64)
    exact = LGCSketcher(model, heads=2, seed=0, projection="identity")(x)[1].numpy()
    w = model.conv.weight.numel()
    gram = exact @ exact.T
    grams = []
    for s in range(400):
        # the projection of seed s, applied to the exact rows (the sketcher itself is checked
        # against this explicit projection above): only the hashes vary
        sk = LGCSketcher(model, heads=2, dim=6, seed=s, projection="countsketch")
        out = np.zeros((6, 12))
        for r in range(2):
            np.add.at(
                out[:, 6 * r : 6 * (r + 1)].T,
                sk.buckets[r].numpy(),
                (exact[:, r * w : (r + 1) * w] * sk.signs[r].numpy()).T,
            )
        grams.append(out @ out.T)
    grams = np.array(grams)
    mean, sem = grams.mean(0), grams.std(0, ddof=1) / np.sqrt(len(grams))
    # every entry of the mean within 4.5 standard errors of the exact Gram (a biased sketch fails)
    assert (np.abs(mean - gram) < 4.5 * sem).all(), np.abs(mean - gram) / sem
    # a sketch with a wrong overall scale (e.g. 2x) fails the same check
    assert not (np.abs(2 * mean - gram) < 4.5 * sem).all()


def test_lgc_score_from_identity_sketch_matches_naive_gradient_gram_correlation() -> None:
    assert "lgc" in selection.available()  # a missing registration fails, it is not skipped
    model = _model(dict(kernel_size=3, padding=1), skip=True)
    x = torch.randn(12, 3, 9, 9, dtype=torch.float64)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 0, 1])
    sketcher = LGCSketcher(model, heads=4, seed=2, projection="identity")
    grads = sketcher(x)[1].numpy()
    exact = _exact_grads(model, x, sketcher.head_vectors)
    w = model.conv.weight.numel()
    kernel = sum(exact[:, r * w : (r + 1) * w] @ exact[:, r * w : (r + 1) * w].T for r in range(4))
    naive = _naive_lgc(kernel, labels)
    assert abs(selection.score("lgc", grads=grads, labels=labels) - naive) < 1e-10


def test_defaults_are_the_configured_ones() -> None:
    """lgc_sketch's defaults are what evaluate_selection passes (config and ExtractSettings)."""
    from pathlib import Path

    from omegaconf import OmegaConf

    from selection.extract import ExtractSettings

    cfg = OmegaConf.load(Path(__file__).parents[1] / "configs" / "selection" / "default.yaml")
    assert cfg.lgc.heads == DEFAULT_HEADS and cfg.lgc.dim == DEFAULT_DIM
    settings = ExtractSettings(Path("."), Path("."), Path("."))
    assert (settings.selection.lgc.heads, settings.selection.lgc.dim) == (
        DEFAULT_HEADS,
        DEFAULT_DIM,
    )


def test_bad_input() -> None:
    model = _model(dict(kernel_size=1))
    for name in ("dim", "heads", "exact_max", "chunk_elements"):
        for bad in (0, -4, 2.5, True):
            with pytest.raises(ValueError, match=name):
                LGCSketcher(model, **{name: bad})
    with pytest.raises(ValueError, match="projection 'srht'.*countsketch"):
        LGCSketcher(model, projection="srht")
    model.conv = nn.Conv2d(4, 4, 3, padding=1, groups=2).double()
    with pytest.raises(ValueError, match="groups=2"):
        LGCSketcher(model)
    with pytest.raises(ValueError, match="no images"):
        lgc_sketch(_model(dict(kernel_size=1)), [], heads=1)
