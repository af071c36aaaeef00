"""Multi-domain experts (Rebuffi et al. 2017/2018): shared weights, domain-specific parameters, one
head per domain, the active domain chosen per batch.

Kinds (module surgery on any registered :class:`~zoo.models.Classifier`):

- ``shared``: every weight shared, only the heads are per domain;
- ``multi_bn``: every ``BatchNorm2d`` becomes a :class:`DomainBatchNorm2d` (per-domain running
  statistics, scale and bias);
- ``adapter``: domain-specific BN as ``multi_bn`` plus a *parallel residual adapter* (Rebuffi et al.
  2018) on every 3x3 convolution: ``y = W * x + A_d * x`` with ``A_d`` a domain-specific 1x1 conv of
  the same stride, initialised to zero (so the domains start from the shared network). Only 3x3 convs
  with ``groups == 1``, padding 1 and dilation 1 are adapted (depthwise convs are not: a per-channel
  1x1 adapter would only rescale what the domain BN already rescales).

:meth:`MultiDomainClassifier.domain_view` bakes one domain into a plain single-domain
``Classifier`` of the base architecture: the domain's BN replaces each ``DomainBatchNorm2d``, and each
adapter is folded into its 3x3 conv (a stride-``s`` 1x1 conv equals a 3x3 conv, padding 1, whose only
non-zero tap is the centre: ``W'[:, :, 1, 1] = W[:, :, 1, 1] + A_d``). The view computes exactly the
same function as the multi-domain model with that domain active, has the standard architecture (so
fine-tuning and LGC treat it like any single-domain expert) and shares no tensor with the original.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from zoo.models import Classifier

KINDS = ("shared", "multi_bn", "adapter")


class DomainBatchNorm2d(nn.Module):
    """One ``BatchNorm2d`` per domain (own running statistics, scale and bias); ``domain`` selects."""

    def __init__(self, bn: nn.BatchNorm2d, domains: Iterable[str]) -> None:
        super().__init__()
        domains = list(domains)
        self.bns = nn.ModuleDict({d: copy.deepcopy(bn) for d in domains})
        self.domain = domains[0]

    def forward(self, x: Tensor) -> Tensor:
        return self.bns[self.domain](x)


class DomainAdapterConv2d(nn.Module):
    """A shared 3x3 ``conv`` plus a domain-specific parallel 1x1 adapter: ``conv(x) + adapters[d](x)``."""

    def __init__(self, conv: nn.Conv2d, domains: Iterable[str]) -> None:
        super().__init__()
        if not adaptable(conv):
            raise ValueError(
                f"cannot adapt {conv}: need a 3x3 conv, groups 1, padding 1, dilation 1"
            )
        self.conv = conv
        adapters = {}
        for d in domains:
            a = nn.Conv2d(conv.in_channels, conv.out_channels, 1, conv.stride, 0, bias=False)
            nn.init.zeros_(a.weight)
            adapters[d] = a.to(device=conv.weight.device, dtype=conv.weight.dtype)
        self.adapters = nn.ModuleDict(adapters)
        self.domain = next(iter(self.adapters))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) + self.adapters[self.domain](x)

    def folded(self, domain: str) -> nn.Conv2d:
        """A plain 3x3 conv computing ``conv(x) + adapters[domain](x)`` (a fresh copy)."""
        conv = copy.deepcopy(self.conv)
        with torch.no_grad():
            conv.weight[:, :, 1, 1] += self.adapters[domain].weight[:, :, 0, 0]
        return conv


def adaptable(conv: nn.Module) -> bool:
    """True for the convs that get a parallel adapter: 3x3, groups 1, padding 1, dilation 1, zeros."""
    return (
        isinstance(conv, nn.Conv2d)
        and tuple(conv.kernel_size) == (3, 3)
        and conv.groups == 1
        and tuple(conv.padding) == (1, 1)
        and tuple(conv.dilation) == (1, 1)
        and conv.padding_mode == "zeros"
    )


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


class MultiDomainClassifier(nn.Module):
    """A multi-domain expert built from a single-domain ``base`` (deep-copied, its head dropped).

    Args:
        base: any :class:`Classifier`; its weights initialise the shared (and per-domain) parameters.
        domains: domain names (no dots: they are ``ModuleDict`` keys).
        num_classes: classes of each domain's head.
        kind: ``shared`` | ``multi_bn`` | ``adapter``.

    ``forward(x)`` returns the logits ``(B, num_classes[domain])`` of the active domain
    (:meth:`set_domain`); every sample of a batch belongs to that domain.
    """

    def __init__(
        self, base: Classifier, domains: list[str], num_classes: dict[str, int], kind: str
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown multi-domain kind {kind!r}; known: {', '.join(KINDS)}")
        domains = list(domains)
        if not domains:
            raise ValueError("a multi-domain expert needs at least one domain")
        if len(set(domains)) != len(domains):
            raise ValueError(f"duplicate domains in {domains}")
        for d in domains:
            if not d or "." in d:
                raise ValueError(f"domain name {d!r} must be non-empty and contain no '.'")
        missing = [d for d in domains if d not in num_classes]
        if missing:
            raise ValueError(f"num_classes lacks domains {missing}; given: {sorted(num_classes)}")
        self.kind = kind
        self.domains = domains
        self.num_classes = {d: int(num_classes[d]) for d in domains}
        self.arch = base.arch
        self.arch_kwargs = dict(base.arch_kwargs)

        backbone = copy.deepcopy(base)
        device, dtype = backbone.head.weight.device, backbone.head.weight.dtype
        backbone.head = nn.Identity()  # the per-domain heads below replace it
        if kind in ("multi_bn", "adapter"):
            for name, m in list(backbone.named_modules()):
                if isinstance(m, nn.BatchNorm2d):
                    _set_module(backbone, name, DomainBatchNorm2d(m, domains))
        if kind == "adapter":
            for name, m in list(backbone.named_modules()):
                if adaptable(m):
                    _set_module(backbone, name, DomainAdapterConv2d(m, domains))
        self.backbone = backbone
        self.heads = nn.ModuleDict(
            {
                d: nn.Linear(backbone.feature_dim, self.num_classes[d]).to(
                    device=device, dtype=dtype
                )
                for d in domains
            }
        )
        self.domain = domains[0]
        self.set_domain(domains[0])

    @property
    def feature_dim(self) -> int:
        return self.backbone.feature_dim

    @property
    def last_conv(self) -> nn.Conv2d:
        return self.backbone.last_conv

    def set_domain(self, domain: str) -> None:
        """Make ``domain`` active: its BNs, adapters and head are used by the next forward passes."""
        if domain not in self.heads:
            raise ValueError(f"unknown domain {domain!r}; known: {', '.join(self.domains)}")
        self.domain = domain
        for m in self.backbone.modules():
            if isinstance(m, DomainBatchNorm2d | DomainAdapterConv2d):
                m.domain = domain

    def forward_features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(B, feature_dim)`` under the active domain."""
        return self.backbone.forward_features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.heads[self.domain](self.forward_features(x))

    def domain_specific_names(self) -> list[str]:
        """Names of the parameters and buffers owned by one domain (BN, adapters, heads)."""
        names = []
        for name in self.state_dict():
            parts = name.split(".")
            if parts[0] == "heads" or "bns" in parts or "adapters" in parts:
                names.append(name)
        return names

    def domain_view(self, domain: str) -> Classifier:
        """A single-domain ``Classifier`` with ``domain``'s BN/adapters/head baked in (fresh tensors)."""
        if domain not in self.heads:
            raise ValueError(f"unknown domain {domain!r}; known: {', '.join(self.domains)}")
        view = copy.deepcopy(self.backbone)
        for name, m in list(view.named_modules()):
            if isinstance(m, DomainBatchNorm2d):
                _set_module(view, name, m.bns[domain])
            elif isinstance(m, DomainAdapterConv2d):
                _set_module(view, name, m.folded(domain))
        view.head = copy.deepcopy(self.heads[domain])
        view.train(self.training)
        return view
