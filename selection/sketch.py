"""The LGC gradient sketch (DESIGN.md section 6): projected per-sample gradients of the last conv layer.

For a zoo model with pooled penultimate features phi(x) (D,) and R seeded Gaussian heads r (D,), the
LGC kernel is K = sum_r G_r G_r^T where row i of G_r is the gradient of r . phi(x_i) with respect to
the weight W (C_out x C_in x kh x kw) of ``model.last_conv`` (BatchNorm in eval mode). For a convolution
that gradient is a sum over output positions p,

    g_r(x) = sum_p delta_p a_p^T            (C_out x C_in*kh*kw)

with delta_p the gradient of r . phi(x) with respect to the conv output at p and a_p the input patch at
p. It is sketched with the Kronecker projection

    vec(P1 g P2^T) = sum_p (P1 delta_p)(P2 a_p)^T        (d1 x d2)

with P1 (d1 x C_out) and P2 (d2 x C_in*kh*kw) seeded Gaussian matrices of variance 1/d1 and 1/d2, so
E[P1^T P1] = I and E[P2^T P2] = I and the sketched Gram matrix is an unbiased estimate of the exact one:
E[<P1 g P2^T, P1 h P2^T>] = <g, h>.

Cost: one forward pass per batch, and per head one backward pass from phi to the conv output only (the
weights before the last conv are never differentiated), plus two small projections. P2 a_p is computed
for all positions at once by a convolution of the layer input with P2 reshaped as a (d2, C_in, kh, kw)
kernel, which is exactly the projection of the unfolded patches. Neither a P x |W| matrix nor a full
per-sample gradient is ever built.

Size: ``dim`` is the sketch size *per head*, d1 * d2 = dim with d1 the largest divisor of dim not above
sqrt(dim) (dim=64 -> 8 x 8; a perfect square or a near-square product is best). The output has
R * dim columns, the R head blocks side by side, so ``G @ G.T`` is the sum over heads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PROJECTIONS = ("gaussian", "identity")


def sketch_factors(dim: int) -> tuple[int, int]:
    """(d1, d2) with d1 * d2 = dim and d1 the largest divisor of dim that is at most sqrt(dim)."""
    if not isinstance(dim, int | np.integer) or isinstance(dim, bool) or dim < 1:
        raise ValueError(
            f"LGC sketch dim must be a positive integer (d1 * d2 per head); got {dim!r}"
        )
    d1 = max(d for d in range(1, math.isqrt(int(dim)) + 1) if dim % d == 0)
    return d1, int(dim) // d1


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
    """Per-sample projected last-conv gradients for R random heads, one batch at a time.

    ``sketcher(x)`` returns ``(features, sketch)``: the pooled features (B, D) of the batch (detached,
    from the same forward pass) and the sketch (B, heads * dim). With ``projection="identity"`` the
    projections are identity matrices (d1 = C_out, d2 = C_in*kh*kw) and the sketch is the exact
    per-sample gradient, flattened like ``weight.grad.reshape(C_out, -1)``; ``dim`` is then ignored.

    The model is switched to eval mode (BatchNorm uses its running statistics) and its parameters stop
    requiring grad while a batch is processed; both are restored afterwards.
    """

    def __init__(
        self,
        model: nn.Module,
        heads: int = 4,
        dim: int = 64,
        seed: int = 0,
        projection: str = "gaussian",
    ) -> None:
        if not isinstance(heads, int | np.integer) or isinstance(heads, bool) or heads < 1:
            raise ValueError(f"LGC heads must be a positive integer; got {heads!r}")
        if projection not in PROJECTIONS:
            raise ValueError(f"unknown LGC projection {projection!r}; valid: {list(PROJECTIONS)}")
        self.model = model
        self.conv = _last_conv(model)
        self.heads = int(heads)
        self.projection = projection
        self.seed = int(seed)
        c_out, c_in, kh, kw = self.conv.weight.shape
        self.c_out, self.patch = c_out, c_in * kh * kw
        self.d1, self.d2 = (c_out, self.patch) if projection == "identity" else sketch_factors(dim)
        feature_dim = getattr(model, "feature_dim", None)
        if not isinstance(feature_dim, int):
            raise ValueError(f"the LGC sketch needs model.feature_dim (int); got {feature_dim!r}")
        self.feature_dim = feature_dim
        # everything random comes from one CPU generator, so a seed gives the same sketch on any device
        gen = torch.Generator().manual_seed(self.seed)
        #: (heads, D) float64: the random heads r
        self.head_vectors = torch.randn(self.heads, feature_dim, generator=gen, dtype=torch.float64)
        if projection == "identity":
            p1 = torch.eye(c_out, dtype=torch.float64)
            p2 = torch.eye(self.patch, dtype=torch.float64)
        else:
            p1 = torch.randn(self.d1, c_out, generator=gen, dtype=torch.float64)
            p2 = torch.randn(self.d2, self.patch, generator=gen, dtype=torch.float64)
            # entries of variance 1/d: E[P^T P] = I, so sketched inner products are unbiased
            p1, p2 = p1 / math.sqrt(self.d1), p2 / math.sqrt(self.d2)
        #: (d1, C_out) and (d2, C_in*kh*kw) float64 projections
        self.p1, self.p2 = p1, p2
        self._cast: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, ...]] = {}
        #: wall seconds spent in forward passes so far: what the features alone would have cost
        self.forward_seconds = 0.0

    @property
    def sketch_dim(self) -> int:
        """Columns of the sketch: heads * d1 * d2."""
        return self.heads * self.d1 * self.d2

    def _on(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """(heads, P1, P2 as a (d2, C_in, kh, kw) conv kernel) on the model's device and dtype."""
        if (device, dtype) not in self._cast:
            # conv2d(input, P2 kernel) at position p = P2 @ unfold(input)[:, p]
            kernel = self.p2.reshape(self.d2, *self.conv.weight.shape[1:])
            self._cast[(device, dtype)] = tuple(
                t.to(device, dtype) for t in (self.head_vectors, self.p1, kernel)
            )
        return self._cast[(device, dtype)]

    def _project_patches(self, a: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        padding = conv.padding
        if conv.padding_mode != "zeros":
            # nn.Conv2d pads explicitly for these modes, then convolves without padding
            a = F.pad(a, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
            padding = 0
        return F.conv2d(a, kernel, None, conv.stride, padding, conv.dilation)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, D) and sketch (B, heads * d1 * d2) of one batch ``x`` (B, 3, H, W)."""
        weight = self.conv.weight
        head_vectors, p1, kernel = self._on(weight.device, weight.dtype)
        captured: dict[str, torch.Tensor] = {}

        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor):
            if "out" in captured:
                raise RuntimeError(
                    "model.last_conv ran twice in one forward pass; the sketch needs one call"
                )
            captured["pa"] = self._project_patches(inputs[0].detach(), kernel)
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
                leaf, pa = captured["out"], captured["pa"]
                b = x.shape[0]
                pa = pa.reshape(b, self.d2, -1)  # (B, d2, L)
                # (B, R); sample i only reaches its own rows of the leaf (eval-mode BN)
                outputs = features @ head_vectors.T
                blocks = []
                for r in range(self.heads):
                    (delta,) = torch.autograd.grad(
                        outputs[:, r].sum(), leaf, retain_graph=r < self.heads - 1
                    )
                    pd = torch.einsum("dc,bcl->bdl", p1, delta.reshape(b, self.c_out, -1))
                    blocks.append(torch.einsum("bdl,bel->bde", pd, pa).reshape(b, -1))
        finally:
            handle.remove()
            for p, flag in flags:
                p.requires_grad_(flag)
            self.model.train(was_training)
        return features.detach(), torch.cat(blocks, dim=1)


def lgc_sketch(
    model: nn.Module,
    batches: Iterable[torch.Tensor] | torch.Tensor,
    heads: int = 4,
    dim: int = 64,
    seed: int = 0,
    projection: str = "gaussian",
    batch_size: int = 256,
) -> np.ndarray:
    """LGC sketches of a set of images: (N, heads * dim) float64, the head blocks concatenated.

    ``batches`` is a tensor (N, 3, H, W) (split into ``batch_size`` chunks) or an iterable of tensors
    (e.g. a DataLoader yielding images, or (images, labels) pairs). Images go to the model's device.
    """
    sketcher = LGCSketcher(model, heads=heads, dim=dim, seed=seed, projection=projection)
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
