"""Multi-domain experts: what each kind shares, BN statistics per domain, adapter folding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.models import create_model
from zoo.multidomain import DomainAdapterConv2d, DomainBatchNorm2d, MultiDomainClassifier, adaptable

DOMAINS = ["a", "b"]
CLASSES = {"a": 3, "b": 5}


pytestmark = pytest.mark.usefixtures("one_thread")


def _multi(kind: str, arch: str = "resnet8", **kwargs) -> MultiDomainClassifier:
    torch.manual_seed(0)
    base = create_model(arch, 3, **({"width": 0.5} if arch == "resnet8" else {}), **kwargs)
    return MultiDomainClassifier(base, DOMAINS, CLASSES, kind=kind)


def _train_two_domains(model: MultiDomainClassifier, steps: int = 3) -> None:
    """A few SGD steps alternating the domains (domain a: bright images, b: dark)."""
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(steps):
        for d, shift in (("a", 1.0), ("b", -1.0)):
            model.set_domain(d)
            x = torch.randn(8, 3, 16, 16, generator=g) + shift
            y = torch.randint(0, CLASSES[d], (8,), generator=g)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()


def _diff_keys(m1: nn.Module, m2: nn.Module) -> set[str]:
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys()
    return {k for k in s1 if s1[k].shape != s2[k].shape or not torch.equal(s1[k], s2[k])}


def _bn_keys(model: nn.Module) -> set[str]:
    return {
        f"{name}.{k}"
        for name, m in model.named_modules()
        if isinstance(m, nn.BatchNorm2d)
        for k in m.state_dict()
        if k != "num_batches_tracked"  # equal when both domains saw as many batches
    }


def test_multi_bn_keeps_separate_running_statistics_exactly():
    model = _multi("multi_bn")
    stem_conv = model.backbone.body.stem[0]
    stem_bn = model.backbone.body.stem[1]
    assert isinstance(stem_bn, DomainBatchNorm2d)
    g = torch.Generator().manual_seed(0)
    xa = torch.randn(6, 3, 16, 16, generator=g) + 2.0
    xb = torch.randn(6, 3, 16, 16, generator=g) - 2.0
    model.train()
    with torch.no_grad():
        model.set_domain("a")
        model(xa)
        # reference: BatchNorm's update from zero with momentum 0.1 = 0.1 * batch mean of the conv output
        ref_a = 0.1 * stem_conv(xa).mean(dim=(0, 2, 3))
        torch.testing.assert_close(stem_bn.bns["a"].running_mean, ref_a)
        assert torch.count_nonzero(stem_bn.bns["b"].running_mean) == 0
        model.set_domain("b")
        model(xb)
        ref_b = 0.1 * stem_conv(xb).mean(dim=(0, 2, 3))
        torch.testing.assert_close(stem_bn.bns["b"].running_mean, ref_b)
        torch.testing.assert_close(stem_bn.bns["a"].running_mean, ref_a)  # untouched by domain b
    assert int(stem_bn.bns["a"].num_batches_tracked) == 1
    assert int(stem_bn.bns["b"].num_batches_tracked) == 1


def test_multi_bn_after_training_on_two_domains():
    model = _multi("multi_bn")
    _train_two_domains(model, steps=3)
    dbns = [m for m in model.modules() if isinstance(m, DomainBatchNorm2d)]
    plain = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(dbns) == len(plain) // 2  # every BatchNorm2d became one per domain
    for m in dbns:
        assert int(m.bns["a"].num_batches_tracked) == 3 and int(m.bns["b"].num_batches_tracked) == 3
        assert not torch.equal(m.bns["a"].running_mean, m.bns["b"].running_mean)
        assert not torch.equal(m.bns["a"].weight, m.bns["b"].weight)
    view_a, view_b = model.domain_view("a"), model.domain_view("b")
    differing = _diff_keys(view_a.body, view_b.body)
    assert differing == _bn_keys(view_a.body)  # BN only: every BN tensor differs, nothing else
    # the views compute what the multi-domain model computes with that domain active
    model.eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        for d, view in (("a", view_a.eval()), ("b", view_b.eval())):
            model.set_domain(d)
            torch.testing.assert_close(view(x), model(x), rtol=1e-5, atol=1e-6)


def test_adapter_domains_differ_only_in_adapters_bn_and_heads():
    model = _multi("adapter")
    n_adaptable = sum(1 for m in create_model("resnet8", 3, width=0.5).modules() if adaptable(m))
    adapters = [m for m in model.modules() if isinstance(m, DomainAdapterConv2d)]
    assert len(adapters) == n_adaptable == 7  # stem + 2 per basic block (3 blocks)
    # zero-initialised adapters: before training the views differ in their heads only
    assert _diff_keys(model.domain_view("a").body, model.domain_view("b").body) == set()
    _train_two_domains(model, steps=2)
    # parameters owned by one domain are exactly the adapters, the BNs and the heads
    names = set(model.domain_specific_names())
    for name in model.state_dict():
        specific = ".adapters." in name or ".bns." in name or name.startswith("heads.")
        assert (name in names) == specific, name
    view_a, view_b = model.domain_view("a"), model.domain_view("b")
    differing = _diff_keys(view_a.body, view_b.body)
    adapted = {
        f"{name}.weight"[len("body.") :]
        for name, m in model.backbone.named_modules()
        if isinstance(m, DomainAdapterConv2d)
    }
    assert differing == _bn_keys(view_a.body) | adapted
    # shared convs (the 1x1 projections) are identical across views
    shared = set(view_a.body.state_dict()) - differing
    assert any("downsample.0.weight" in k for k in shared)
    model.eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        for d, view in (("a", view_a.eval()), ("b", view_b.eval())):
            model.set_domain(d)
            torch.testing.assert_close(view(x), model(x), rtol=1e-4, atol=1e-5)


def test_shared_domains_differ_only_in_heads():
    model = _multi("shared")
    _train_two_domains(model, steps=2)
    view_a, view_b = model.domain_view("a"), model.domain_view("b")
    assert _diff_keys(view_a.body, view_b.body) == set()
    assert view_a.head.out_features == 3 and view_b.head.out_features == 5
    assert set(model.domain_specific_names()) == {
        k for k in model.state_dict() if k.startswith("heads.")
    }


@pytest.mark.parametrize("stride", [1, 2])
def test_folded_adapter_equals_conv_plus_adapter(stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride, 1, bias=True)
    wrapped = DomainAdapterConv2d(conv, ["a", "b"])
    nn.init.normal_(wrapped.adapters["a"].weight)
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        reference = conv(x) + F.conv2d(x, wrapped.adapters["a"].weight, stride=stride)
        torch.testing.assert_close(wrapped.folded("a")(x), reference, rtol=1e-5, atol=1e-5)
        wrapped.domain = "a"
        torch.testing.assert_close(wrapped(x), reference)
    assert not adaptable(nn.Conv2d(4, 4, 3, 1, 1, groups=4))
    assert not adaptable(nn.Conv2d(4, 4, 3, 1, 2, dilation=2))


def test_views_share_no_state():
    model = _multi("adapter")
    view = model.domain_view("a")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in view.parameters():
            p.add_(1.0)
        for b in view.buffers():
            b.add_(1)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("arch", ["densenet_mini", "efficientnet_lite0"])
def test_surgery_is_generic(arch):
    model = _multi("adapter", arch)
    base = create_model(arch, 3)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in base.modules())
    assert sum(isinstance(m, DomainBatchNorm2d) for m in model.modules()) == n_bn
    assert sum(isinstance(m, DomainAdapterConv2d) for m in model.modules()) == sum(
        adaptable(m) for m in base.modules()
    )
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        model.set_domain("b")
        assert model(x).shape == (2, 5)
        view = model.domain_view("b").eval()
        torch.testing.assert_close(view(x), model(x), rtol=1e-4, atol=1e-5)
    assert isinstance(view.last_conv, nn.Conv2d)


def test_errors():
    base = create_model("resnet8", 3, width=0.5)
    with pytest.raises(ValueError, match="unknown multi-domain kind 'multibn'"):
        MultiDomainClassifier(base, DOMAINS, CLASSES, kind="multibn")
    with pytest.raises(ValueError, match="lacks domains"):
        MultiDomainClassifier(base, ["a", "c"], CLASSES, kind="shared")
    with pytest.raises(ValueError, match="no '.'"):
        MultiDomainClassifier(base, ["a.b"], {"a.b": 2}, kind="shared")
    model = MultiDomainClassifier(base, DOMAINS, CLASSES, kind="multi_bn")
    with pytest.raises(ValueError, match="unknown domain 'z'; known: a, b"):
        model.set_domain("z")
    with pytest.raises(ValueError, match="unknown domain"):
        model.domain_view("z")
