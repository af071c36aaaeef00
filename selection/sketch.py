"""The LGC gradient sketch (DESIGN.md section 6): per-sample gradients of the last conv layer.

For a zoo model with pooled penultimate features phi(x) (D,) and R seeded Gaussian heads r (D,), the
LGC kernel is K = sum_r G_r G_r^T where row i of G_r is the gradient of r . phi(x_i) with respect to
the weight W (C_out x C_in x kh x kw) of ``model.last_conv`` (BatchNorm in eval mode; Mu et al. 2020,
"Gradients as Features for Deep Representation Learning", as used by Deshpande et al. 2021, "A linearized
framework and a new benchmark for model selection for fine-tuning", eq. 2, 7, 8). For a convolution
that gradient is a sum over the L output positions p,

    g_r(x) = sum_p delta_p a_p^T            (C_out x C_in*kh*kw)

with delta_p the gradient of r . phi(x) with respect to the conv output at p and a_p the unfolded
input patch at p. The rows g_r(x) are built exactly, by one batched matrix product per block of
samples and output channels (at most ``chunk_elements`` gradient numbers at a time, so memory stays
bounded whatever the layer size), then

- ``projection="identity"`` (alias ``"exact"``): kept as they are, |W| columns per head, laid out
  like ``weight.grad.reshape(-1)``. K is exact (equal to torch.func per-sample gradients to rounding).
- ``projection="countsketch"``: count-sketched to ``dim`` columns per head (Charikar et al. 2002;
  Weinberger et al. 2009): weight coordinate j goes to column h_r(j) with sign s_r(j), h_r and s_r
  seeded, independent per head. <S g, S h> is an unbiased estimate of <g, h> with variance
  (||g||^2 ||h||^2 + <g, h>^2 - 2 sum_j g_j^2 h_j^2) / dim, the dense Gaussian JL variance less a
  term, at the cost of one scatter-add per gradient number (no |W| x dim matrix is ever stored).
- ``projection="auto"`` (the default): identity when |W| <= ``exact_max``, else the count sketch.

Why not a cheaper structured sketch: LGC is a Pearson correlation, so projection noise inflates
var(K) while leaving cov(K, labels) unbiased, and LGC shrinks by a model-dependent factor. A Kronecker
sketch vec(P1 g P2^T) with 8 x 8 Gaussian factors, an earlier version of this module, never forms g,
but since g is close to rank one its error is the product of two 8-dimensional JL errors. Its
entry-wise kernel correlation with the exact kernel was 0.35-0.99 and its LGC 0.25-1.59 times the
exact value on the four mini-zoo architectures (benchmarks/RESULTS.md, "LGC kernel fidelity").
The count sketch hashes all C_out * C_in*kh*kw coordinates jointly, so its error is that of one
``dim``-dimensional JL map.

Measured with the defaults (R=4, exact_max=8192, dim=4096; benchmarks/bench_lgc.py, N=200 digits,
ResNet-8, ResNet-20, DenseNet-mini and EfficientNet-Lite0, random init and after 40 SGD steps):
DenseNet-mini (|W| = 5184) is exact; the count-sketched ones keep a kernel correlation with the exact
kernel of 0.988 or more and an LGC within 2% of exact (RESULTS.md, "LGC kernel fidelity";
at dim=1024 EfficientNet-Lite0 at random init fell to 0.949 and a trained ResNet-8 to 4.4% off, hence
4096). Well posed while dim is large against (mean K / std K)^2, the squared offset-to-spread ratio
of the uncentred kernel, which is largest at random init. Output size: N x R*dim, 64 MiB in float64
for N=500.

Cost: one forward pass per batch; per head one backward pass from phi to the conv output only (the
weights before the last conv are never differentiated), a B x C_out x L x C_in*kh*kw batched matrix
product and a scatter-add of B * |W| numbers. At ResNet-101 / DenseNet-169 scale this is well under
one forward + backward pass of the batch (RESULTS.md).

Output: R head blocks side by side, so ``G @ G.T`` is the sum over heads.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PROJECTIONS = ("auto", "countsketch", "identity", "exact")
#: identifies the sketch algorithm in cache keys (a change of algorithm must not hit old caches)
SKETCH_ID = "exact-or-countsketch-v2"
DEFAULT_HEADS = 4
DEFAULT_DIM = 4096
DEFAULT_EXACT_MAX = 8192
DEFAULT_CHUNK_ELEMENTS = 1 << 24


def _positive_int(value: object, what: str) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise ValueError(f"LGC {what} must be a positive integer; got {value!r}")
    return int(value)


def _last_conv(model: nn.Module) -> nn.Conv2d:
    conv = getattr(model, "last_conv", None)
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(
            f"the LGC sketch needs model.last_conv to be an nn.Conv2d (the conv feeding the pooled "
            f"features); {type(model).__name__}.last_conv is {type(conv).__name__}"
        )
    if conv.groups != 1:
        raise ValueError(
            f"the LGC sketch supports convolutions with groups=1 only; {type(model).__name__}.last_conv "
            f"has groups={conv.groups} (use a model whose last conv is a dense 1x1 or 3x3 conv)"
        )
    return conv


class LGCSketcher:
    """Per-sample last-conv gradients for R random heads, exact or count-sketched, one batch at a time.

    ``sketcher(x)`` returns ``(features, sketch)``: the pooled features (B, D) of the batch (detached,
    from the same forward pass) and the sketch (B, heads * columns_per_head), where columns_per_head
    is |W| on the exact path and ``dim`` on the count-sketch path (see the module docstring for when
    each applies and its measured error). ``exact`` says which path was taken.

    ``chunk_elements`` bounds how many per-sample gradient numbers are materialised at once (default
    2^24, 64 MiB in float32); blocks of samples and of output channels are sized to fit it.

    The model is switched to eval mode (BatchNorm uses its running statistics) and its parameters stop
    requiring grad while a batch is processed; both are restored afterwards.
    """

    def __init__(
        self,
        model: nn.Module,
        heads: int = DEFAULT_HEADS,
        dim: int = DEFAULT_DIM,
        seed: int = 0,
        projection: str = "auto",
        exact_max: int = DEFAULT_EXACT_MAX,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    ) -> None:
        self.heads = _positive_int(heads, "heads")
        self.dim = _positive_int(dim, "sketch dim (columns per head)")
        self.exact_max = _positive_int(exact_max, "exact_max (weights per head kept exactly)")
        self.chunk_elements = _positive_int(chunk_elements, "chunk_elements")
        if projection not in PROJECTIONS:
            raise ValueError(f"unknown LGC projection {projection!r}; valid: {list(PROJECTIONS)}")
        self.model = model
        self.conv = _last_conv(model)
        self.seed = int(seed)
        c_out, c_in, kh, kw = self.conv.weight.shape
        self.c_out, self.patch = c_out, c_in * kh * kw
        self.weights = c_out * self.patch
        if projection == "auto":
            projection = "identity" if self.weights <= self.exact_max else "countsketch"
        self.projection = "identity" if projection == "exact" else projection
        self.exact = self.projection == "identity"
        feature_dim = getattr(model, "feature_dim", None)
        if not isinstance(feature_dim, int):
            raise ValueError(f"the LGC sketch needs model.feature_dim (int); got {feature_dim!r}")
        self.feature_dim = feature_dim
        # everything random comes from one CPU generator, so a seed gives the same sketch on any
        # device; the heads are drawn first, so they do not depend on the projection
        gen = torch.Generator().manual_seed(self.seed)
        #: (heads, D) float64: the random heads r
        self.head_vectors = torch.randn(self.heads, feature_dim, generator=gen, dtype=torch.float64)
        #: (heads, |W|) int64 bucket and (heads, |W|) float64 sign of every weight (count sketch only)
        self.buckets: torch.Tensor | None = None
        self.signs: torch.Tensor | None = None
        if not self.exact:
            self.buckets = torch.randint(self.dim, (self.heads, self.weights), generator=gen)
            bits = torch.randint(2, (self.heads, self.weights), generator=gen)
            self.signs = bits.to(torch.float64) * 2.0 - 1.0
        self._cast: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor | None, ...]] = {}
        #: wall seconds spent in forward passes so far: what the features alone would have cost
        self.forward_seconds = 0.0

    @property
    def columns_per_head(self) -> int:
        """|W| on the exact path, ``dim`` on the count-sketch path."""
        return self.weights if self.exact else self.dim

    @property
    def sketch_dim(self) -> int:
        """Columns of the sketch: heads * columns_per_head."""
        return self.heads * self.columns_per_head

    def _on(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor | None, ...]:
        """(heads, buckets, signs) on the model's device (heads and signs in its dtype)."""
        if (device, dtype) not in self._cast:
            self._cast[(device, dtype)] = (
                self.head_vectors.to(device, dtype),
                None if self.buckets is None else self.buckets.to(device),
                None if self.signs is None else self.signs.to(device, dtype),
            )
        return self._cast[(device, dtype)]

    def _unfold(self, a: torch.Tensor) -> torch.Tensor:
        """(B, C_in*kh*kw, L) input patches, in the order of ``weight.reshape(C_out, -1)``."""
        conv = self.conv
        padding = conv.padding
        if conv.padding_mode != "zeros" or isinstance(padding, str):
            # what nn.Conv2d does for these modes (and for padding="same"): pad, then no padding
            mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
            a = F.pad(a, conv._reversed_padding_repeated_twice, mode=mode)
            padding = 0
        return F.unfold(a, conv.kernel_size, conv.dilation, padding, conv.stride)

    def _blocks(self, batch: int) -> tuple[int, int]:
        """(samples, output channels) per materialised block of at most chunk_elements numbers."""
        channels = max(1, min(self.c_out, self.chunk_elements // self.patch))
        samples = max(1, min(batch, self.chunk_elements // (channels * self.patch)))
        return samples, channels

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, D) and sketch (B, heads * columns_per_head) of one batch ``x`` (B, 3, H, W)."""
        weight = self.conv.weight
        head_vectors, buckets, signs = self._on(weight.device, weight.dtype)
        captured: dict[str, torch.Tensor] = {}

        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor):
            if "out" in captured:
                raise RuntimeError(
                    "model.last_conv ran twice in one forward pass; the sketch needs one call"
                )
            captured["patches"] = self._unfold(inputs[0].detach())
            # the graph starts here: only the layers after the last conv are differentiated
            leaf = output.detach().requires_grad_(True)
            captured["out"] = leaf
            # a non-leaf, so in-place ops downstream (ReLU(inplace)) are allowed
            return leaf.clone()

        was_training = self.model.training
        flags = [(p, p.requires_grad) for p in self.model.parameters()]
        handle = self.conv.register_forward_hook(hook)
        try:
            self.model.eval()
            for p, _ in flags:
                p.requires_grad_(False)
            with torch.inference_mode(False), torch.enable_grad():
                start = time.perf_counter()
                features = self.model.forward_features(x)
                if features.device.type == "cuda":
                    torch.cuda.synchronize(features.device)
                self.forward_seconds += time.perf_counter() - start
                if "out" not in captured:
                    raise RuntimeError("model.last_conv did not run in forward_features")
                leaf, patches = captured["out"], captured["patches"]
                b = x.shape[0]
                # (B, L, C_in*kh*kw): g = delta @ patches^T per sample
                patches_t = patches.transpose(1, 2)
                # (B, R); sample i only reaches its own rows of the leaf (eval-mode BN)
                outputs = features @ head_vectors.T
                out = features.new_zeros(b, self.sketch_dim)
                step_b, step_c = self._blocks(b)
                cols = self.columns_per_head
                for r in range(self.heads):
                    (delta,) = torch.autograd.grad(
                        outputs[:, r].sum(), leaf, retain_graph=r < self.heads - 1
                    )
                    delta = delta.reshape(b, self.c_out, -1)  # (B, C_out, L)
                    block = out[:, r * cols : (r + 1) * cols]
                    for i in range(0, b, step_b):
                        for c in range(0, self.c_out, step_c):
                            c_end = min(c + step_c, self.c_out)
                            g = torch.bmm(delta[i : i + step_b, c:c_end], patches_t[i : i + step_b])
                            g = g.reshape(g.shape[0], -1)  # (b, channels * patch)
                            lo, hi = c * self.patch, c_end * self.patch
                            if self.exact:
                                block[i : i + step_b, lo:hi] = g
                            else:
                                block[i : i + step_b].index_add_(
                                    1, buckets[r, lo:hi], g * signs[r, lo:hi]
                                )
                    del delta
        finally:
            handle.remove()
            for p, flag in flags:
                p.requires_grad_(flag)
            self.model.train(was_training)
        return features.detach(), out


def lgc_sketch(
    model: nn.Module,
    batches: Iterable[torch.Tensor] | torch.Tensor,
    heads: int = DEFAULT_HEADS,
    dim: int = DEFAULT_DIM,
    seed: int = 0,
    projection: str = "auto",
    batch_size: int = 256,
    exact_max: int = DEFAULT_EXACT_MAX,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> np.ndarray:
    """LGC gradients of a set of images: (N, heads * columns_per_head) float64, head blocks side by side.

    ``batches`` is a tensor (N, 3, H, W) (split into ``batch_size`` chunks) or an iterable of tensors
    (e.g. a DataLoader yielding images, or (images, labels) pairs). Images go to the model's device.
    The other arguments are :class:`LGCSketcher`'s; with the defaults a last conv of at most 8192
    weights is kept exactly (columns_per_head = |W|), a larger one is count-sketched to 4096 columns
    per head (kernel correlation with the exact kernel >= 0.988, LGC within 2%; module
    docstring).
    """
    sketcher = LGCSketcher(
        model,
        heads=heads,
        dim=dim,
        seed=seed,
        projection=projection,
        exact_max=exact_max,
        chunk_elements=chunk_elements,
    )
    if isinstance(batches, torch.Tensor):
        batches = torch.split(batches, batch_size)
    device = sketcher.conv.weight.device
    out = []
    for batch in batches:
        x = batch[0] if isinstance(batch, tuple | list) else batch
        _, g = sketcher(x.to(device, sketcher.conv.weight.dtype))
        out.append(g.detach().to("cpu", torch.float64).numpy())
    if not out:
        raise ValueError("lgc_sketch got no images; need at least one batch")
    return np.concatenate(out, axis=0)
