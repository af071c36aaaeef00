"""Architectures: shapes, last convolution, parameter counts, the shipped EfficientNet-Lite0 weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    arch_spec,
    available_archs,
    create_model,
    lite0_weights_path,
    replace_head,
)


def _densenet_mini_dim(growth=12, blocks=(3, 3, 3), init=24) -> int:
    # DenseNet-BC: each block adds growth * layers channels, each transition halves them
    ch = init
    for i, n in enumerate(blocks):
        ch += growth * n
        if i < len(blocks) - 1:
            ch //= 2
    return ch


# (arch, kwargs, input side, feature_dim)
ARCHS = [
    ("resnet8", {}, 32, 64),
    ("resnet8", {"width": 0.5}, 32, 32),
    ("resnet8", {"stem_stride": 2}, 32, 64),
    ("resnet20", {}, 32, 64),
    ("densenet_mini", {}, 32, _densenet_mini_dim()),
    (
        "densenet_mini",
        {"stem_stride": 2},
        32,
        _densenet_mini_dim(),
    ),  # (24+36)/2=30, (30+36)/2=33, 33+36=69
    # the ImageNet networks accept 32x32 too (1x1 final maps): enough to check shapes and hooks
    ("resnet101", {}, 32, 2048),
    ("densenet169", {}, 32, 1664),
    ("efficientnet_lite0", {}, 32, 1280),
]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_registry_lists_every_arch():
    assert set(available_archs()) >= {
        "resnet8",
        "resnet20",
        "densenet_mini",
        "resnet101",
        "densenet169",
        "efficientnet_lite0",
    }
    assert arch_spec("resnet8").input_size == 32
    assert arch_spec("efficientnet_lite0").pretrained == "imagenet"


@pytest.mark.parametrize("arch,kwargs,side,dim", ARCHS)
def test_shapes_and_last_conv(arch, kwargs, side, dim):
    torch.manual_seed(0)
    model = create_model(arch, 7, **kwargs).eval()
    assert model.feature_dim == dim
    assert model.arch == arch and kwargs.items() <= model.arch_kwargs.items()
    x = torch.randn(2, 3, side, side)
    executed: list[nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: executed.append(m))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model(x)
    for h in hooks:
        h.remove()
    assert feats.shape == (2, dim)
    assert logits.shape == (2, 7)
    # forward = head(forward_features)
    torch.testing.assert_close(logits, model.head(feats)[: len(logits)])
    # the last conv executed in a forward pass is the one exposed (executed twice: two calls)
    assert executed[-1] is model.last_conv
    if arch != "densenet_mini" and arch != "densenet169":
        # non-dense nets: the last conv's output channels are the pooled features
        assert model.last_conv.out_channels == dim


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_references():
    # torchvision's documented counts (1000 classes) minus the part of the head that changes
    def with_head(total_1000: int, dim: int, classes: int) -> int:
        return total_1000 - (dim + 1) * 1000 + (dim + 1) * classes

    assert _n_params(create_model("resnet101", 10)) == with_head(44_549_160, 2048, 10)
    assert _n_params(create_model("densenet169", 10)) == with_head(14_149_480, 1664, 10)
    # EfficientNet-Lite0: 4.652M parameters with the 1000-class head
    assert _n_params(create_model("efficientnet_lite0", 1000)) == 4_652_008

    # CIFAR ResNet-8 by hand: 3x3 convs, BN (2 per channel), 1x1 projections, linear head
    conv = lambda i, o, k=3: i * o * k * k  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731
    expected = (
        conv(3, 16) + bn(16)
        + 2 * conv(16, 16) + 2 * bn(16)
        + conv(16, 32) + conv(32, 32) + 2 * bn(32) + conv(16, 32, 1) + bn(32)
        + conv(32, 64) + conv(64, 64) + 2 * bn(64) + conv(32, 64, 1) + bn(64)
        + 64 * 10 + 10
    )  # fmt: skip
    assert _n_params(create_model("resnet8", 10)) == expected


def test_unknown_arch_and_bad_arguments():
    with pytest.raises(ValueError, match=r"unknown arch 'resnet9'.*resnet8"):
        create_model("resnet9", 10)
    with pytest.raises(ValueError, match="no shipped pretrained weights"):
        create_model("resnet8", 10, pretrained=True)
    with pytest.raises(ValueError, match="bad arguments"):
        create_model("resnet8", 10, depth=3)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("resnet8", 0)


def test_replace_head_and_channels_last():
    torch.manual_seed(0)
    model = create_model("resnet8", 5, width=0.5).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
        replace_head(model, 11)
        assert model(x).shape == (3, 11)
        cl = model.to(memory_format=torch.channels_last)
        feats_cl = cl.forward_features(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(feats_cl, feats, rtol=1e-4, atol=1e-5)


def test_lite0_weights_map_onto_the_layout():
    reference = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    model = create_model("efficientnet_lite0", 1000, pretrained=True)
    body = model.body
    assert torch.equal(body.stem.conv.weight, reference["_conv_stem.weight"])
    assert torch.equal(body.stem.bn.running_var, reference["_bn0.running_var"])
    # block 3 = the first 5x5 block (stage 3, first repeat): depthwise weights
    assert torch.equal(
        body.blocks[2][0].conv_dw.weight, reference["_blocks.3._depthwise_conv.weight"]
    )
    assert torch.equal(
        body.blocks[6][0].conv_pwl.weight, reference["_blocks.15._project_conv.weight"]
    )
    assert torch.equal(body.head.conv.weight, reference["_conv_head.weight"])
    assert torch.equal(model.head.weight, reference["_fc.weight"])
    # another class count keeps the backbone, not the classifier
    model10 = create_model("efficientnet_lite0", 10, pretrained=True)
    assert torch.equal(model10.body.head.conv.weight, reference["_conv_head.weight"])
    assert model10.head.weight.shape == (10, 1280)


def test_lite0_classifies_the_coffee_cup():
    skimage_data = pytest.importorskip("skimage.data")
    image = torch.from_numpy(skimage_data.coffee()).permute(2, 0, 1).float() / 255.0
    x = F.interpolate(
        image[None], size=(224, 224), mode="bilinear", antialias=True, align_corners=False
    )
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    model = create_model("efficientnet_lite0", 1000, pretrained=True).eval()
    with torch.no_grad():
        probs = model((x - mean) / std).softmax(1)[0]
    top5 = set(probs.topk(5).indices.tolist())
    # ImageNet: 967 espresso, 968 cup, 504 coffee mug
    assert top5 & {967, 968, 504}
    assert int(probs.argmax()) in {967, 968, 504}


@pytest.mark.parametrize(
    "arch,stride,sides",
    [
        # the maps after the stem and after each stage / dense block
        ("resnet8", 1, [32, 32, 16, 8]),
        ("resnet8", 2, [16, 16, 8, 4]),
        ("resnet20", 2, [16, 16, 8, 4]),
    ],
)
def test_stem_stride_halves_every_resnet_map(arch, stride, sides):
    model = create_model(arch, 10, stem_stride=stride).eval()
    x = torch.randn(2, 3, 32, 32)
    got = []
    with torch.no_grad():
        for child in model.body.children():
            x = child(x)
            got.append(x.shape[-1])
    assert got == sides
    # the same weights whatever the stride: one parameter count
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in create_model(arch, 10).parameters()
    )


@pytest.mark.parametrize("stride,side", [(1, 16), (2, 8)])
def test_densenet_mini_stem_stride_sets_the_first_block_maps(stride, side):
    model = create_model("densenet_mini", 10, stem_stride=stride).eval()
    features = model.body.features
    with torch.no_grad():
        x = features.pool0(
            features.relu0(features.norm0(features.conv0(torch.randn(2, 3, 32, 32))))
        )
    assert x.shape[-1] == side


def test_stem_stride_is_recorded_and_checked():
    assert create_model("resnet8", 3).arch_kwargs == {"width": 1.0, "stem_stride": 1}
    assert create_model("densenet_mini", 3, stem_stride=2).arch_kwargs["stem_stride"] == 2
    for bad in (0, 3, True, 1.5):
        with pytest.raises(ValueError, match="stem_stride must be 1 or 2"):
            create_model("resnet8", 3, stem_stride=bad)
