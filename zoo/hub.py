"""Public pre-trained torchvision models as zoo experts (arch ``torchvision``, type ``pretrained``).

A zoo config names one as ``{id: resnet50_imagenet, arch: torchvision, arch_kwargs: {model:
resnet50, weights: IMAGENET1K_V2}, type: pretrained, pretrained: imagenet}``;
:func:`zoo.card.import_pretrained` builds it with ``create_model("torchvision", 1000,
pretrained=True, model=..., weights=...)`` and stores it like any expert (safetensors + card), so
extraction, scores and fine-tuning use it unchanged.

The network is wrapped as a :class:`~zoo.models.Classifier` (body -> global mean pool -> linear
head), for the families whose ImageNet head is one linear layer on pooled features:

- ``resnet*``, ``resnext*``, ``wide_resnet*``: body = conv1 ... layer4, head = fc;
- ``densenet*``: body = features + ReLU, head = classifier;
- ``efficientnet_*`` (B0-B7, V2), ``mobilenet_v2``: body = features, head = the classifier's
  linear layer (its dropout, active only in training, is dropped);
- ``regnet_*``: body = stem + trunk_output, head = fc.

``last_conv`` (LGC's layer) is the last ``Conv2d`` of the body in module order (for DenseNets the
last dense layer's second conv, as :func:`zoo.models.densenet169`). Every entry records ImageNet's
224 px input and mean/std; models trained at other sizes (EfficientNet-B1..B7) are used at 224.

Weights (:func:`weights_file`): the file torchvision would download (the basename of the weights'
URL) is looked for in ``weights_dir`` (:func:`weights_source`, or the environment variable
``ZOOBENCH_WEIGHTS_DIR``) and then in torch's hub cache (``torch.hub.get_dir()/checkpoints``);
when neither has it, torchvision downloads it into that cache if downloads are allowed, else a
FileNotFoundError names the file, where it was looked for, and where to get it.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

__all__ = ["FAMILIES", "build_torchvision", "weights_file", "weights_source"]

FAMILIES = (
    "resnet",
    "resnext",
    "wide_resnet",
    "densenet",
    "efficientnet",
    "mobilenet_v2",
    "regnet",
)

_SOURCE: dict[str, Any] = {"weights_dir": None, "download": True}


@contextlib.contextmanager
def weights_source(weights_dir: str | os.PathLike | None, download: bool) -> Iterator[None]:
    """Within the block, pretrained torchvision weights come from ``weights_dir`` (then torch's
    hub cache), and are downloaded only when ``download``."""
    before = dict(_SOURCE)
    _SOURCE.update(weights_dir=weights_dir, download=bool(download))
    try:
        yield
    finally:
        _SOURCE.update(before)


def _weights_enum(model: str, weights: str) -> Any:
    import torchvision.models as tvm

    try:
        enum = tvm.get_model_weights(model)
    except ValueError:
        raise ValueError(
            f"unknown torchvision model {model!r}; supported families: {', '.join(FAMILIES)}"
        ) from None
    names = [w.name for w in enum]
    if weights == "DEFAULT":
        return enum.DEFAULT
    if weights not in names:
        raise ValueError(f"torchvision {model} has no weights {weights!r}; known: {names}")
    return enum[weights]


def weights_file(model: str, weights: str) -> Path | None:
    """The local file of ``model``'s ``weights`` (``weights_dir`` first, then the hub cache);
    None when downloads are allowed and neither has it; else FileNotFoundError (see module doc)."""
    w = _weights_enum(model, weights)
    name = Path(urlparse(w.url).path).name
    places = []
    wdir = _SOURCE["weights_dir"] or os.environ.get("ZOOBENCH_WEIGHTS_DIR")
    if wdir:
        places.append(Path(wdir).expanduser().resolve())
    places.append(Path(torch.hub.get_dir()) / "checkpoints")
    for place in places:
        if (place / name).is_file():
            return place / name
    if _SOURCE["download"]:
        return None
    raise FileNotFoundError(
        f"weights file {name} of torchvision {model} ({w.name}) not found; looked in "
        f"{', '.join(str(p) for p in places)}. Downloads are off: download {w.url} and put it in "
        "a folder given as weights_dir=FOLDER (or in the hub cache), or run with download=true "
        "on a machine with network"
    )


def _family(model: str) -> str:
    for fam in FAMILIES:
        if model.startswith(fam):
            return fam
    raise ValueError(
        f"torchvision model {model!r} is not supported as a zoo entry (its head is not one linear "
        f"layer on pooled features, or its family is not wrapped); supported: {', '.join(FAMILIES)}"
    )


def _wrap(model: str, tv: nn.Module, num_classes: int) -> Any:
    from zoo.models import Classifier

    fam = _family(model)
    if fam in ("resnet", "resnext", "wide_resnet"):
        names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
        body: nn.Module = nn.Sequential(OrderedDict((n, getattr(tv, n)) for n in names))
        head = tv.fc
    elif fam == "densenet":
        body = nn.Sequential(OrderedDict([("features", tv.features), ("relu", nn.ReLU())]))
        head = tv.classifier
    elif fam == "regnet":
        body = nn.Sequential(OrderedDict([("stem", tv.stem), ("trunk_output", tv.trunk_output)]))
        head = tv.fc
    else:  # efficientnet, mobilenet_v2: classifier = (Dropout, Linear)
        body = nn.Sequential(OrderedDict([("features", tv.features)]))
        head = tv.classifier[-1]
    if not isinstance(head, nn.Linear):
        raise ValueError(f"torchvision {model}: its head is a {type(head).__name__}, not Linear")
    if fam == "densenet":
        block = [n for n, _ in tv.features.named_children() if n.startswith("denseblock")][-1]
        layer = [n for n, _ in getattr(tv.features, block).named_children()][-1]
        last = f"features.{block}.{layer}.conv2"
    else:
        last = [n for n, m in body.named_modules() if isinstance(m, nn.Conv2d)][-1]
    out = Classifier(body, head.in_features, head.out_features, last_conv=last)
    out.head = head
    if num_classes != head.out_features:
        from zoo.models import replace_head

        replace_head(out, num_classes)
    return out


def build_torchvision(model: str, weights: str, num_classes: int, pretrained: bool) -> Any:
    """torchvision's ``model`` as a Classifier with a ``num_classes`` head; ``pretrained`` loads
    ``weights`` (a weights name such as ``IMAGENET1K_V1``, or ``DEFAULT``) first."""
    import torchvision.models as tvm

    _family(model)
    w = _weights_enum(model, weights)
    tv = tvm.get_model(model, weights=None, num_classes=len(w.meta["categories"]))
    if pretrained:
        path = weights_file(model, weights)
        if path is None:
            state = w.get_state_dict(progress=True, check_hash=True)
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001  (torch raises many types for a bad file)
                raise ValueError(f"cannot read weights file {path}: {e}") from e
        try:
            tv.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(
                f"weights file {path} does not fit torchvision {model}: {str(e)[:300]}"
            ) from None
    return _wrap(model, tv, num_classes)
