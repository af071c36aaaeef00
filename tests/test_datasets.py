"""The dataset registry and the mini domains: a contract test per mini dataset (VTAB-style), the
union mini_general against its parts, the registry's errors and its agreement with the dataset and
target configs, small fake paper datasets on disk, and the overview table."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import pickle
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from tests.factories import ROOT
from zoo.data import (
    DatasetNotFoundError,
    ImageDataset,
    available_datasets,
    get_info,
    is_available,
    load_split,
    mini,
)

# Independent reference: the class counts of the paper's datasets (paper + dataset pages) and the
# mini domains (DESIGN.md section 7 and zoo/data/mini.py's docstring).
CLASSES = {
    "resisc45": 45,
    "food101": 101,
    "logo2k": 2341,
    "landmarks_v2": 81313,
    "inat2019": 1010,
    "imat_product2019": 2019,
    "imagenet": 1000,
    "places365": 365,
    "cucumber9": 9,
    "dtd": 47,
    "magnetic_tile": 6,
    "icassava": 5,
    "flowers102": 102,
    "pets": 37,
    "flood_depth": 2,
    "ucmerced": 21,
    "cub200": 200,
    "cars": 196,
    "belga_logos": 37,
    "mini_mnist": 10,
    "mini_animals": 10,
    "mini_letters": 26,
    "mini_shapes": 10,
    "mini_textures": 10,
    "mini_general": 30,
    "mini_digits": 10,
    "mini_greek": 16,
    "mini_polygons": 8,
    "mini_fabrics": 8,
    "mini_mnist_warped": 10,
    "mini_animal_poses": 10,
    "mini_animal_outlines": 10,
    "mini_mixed": 12,
}
PAPER = [n for n in CLASSES if not n.startswith("mini_")]
MINI = [n for n in CLASSES if n.startswith("mini_")]
MINI_TARGETS = [
    "mini_digits",
    "mini_greek",
    "mini_polygons",
    "mini_fabrics",
    "mini_mnist_warped",
    "mini_animal_poses",
    "mini_animal_outlines",
    "mini_mixed",
]
# targets drawn from images no expert trained on (mini_mnist's test split, unused animals)
HELD_OUT = {
    "mini_mnist_warped": "mini_mnist",
    "mini_animal_poses": "mini_animals",
    "mini_animal_outlines": "mini_animals",
}
# (train, test) images: 80/20 of 5,000 MNIST and of 500 animals per class; generated per-class
# counts x classes; digits: floor(0.2 n + 0.5) test images of each class of load_digits (below)
SIZES = {
    "mini_mnist": (4000, 1000),
    "mini_animals": (4000, 1000),
    "mini_letters": (26 * 120, 26 * 30),
    "mini_shapes": (10 * 320, 10 * 80),
    "mini_textures": (10 * 300, 10 * 75),
    "mini_general": (4000 + 10 * 320 + 10 * 300, 1000 + 10 * 80 + 10 * 75),
    "mini_digits": (1438, 359),
    "mini_greek": (16 * 100, 16 * 100),
    "mini_polygons": (8 * 100, 8 * 100),
    "mini_fabrics": (8 * 100, 8 * 100),
    "mini_mnist_warped": (10 * 60, 10 * 40),
    "mini_animal_poses": (10 * 60, 10 * 40),
    "mini_animal_outlines": (10 * 60, 10 * 40),
    "mini_mixed": (12 * 60, 12 * 50),
}


def _hashes(images: np.ndarray) -> set[str]:
    return {hashlib.sha1(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images}


# --------------------------------------------------------------------------------------------------
# registry


def test_registry_lists_every_dataset_with_its_class_count():
    assert set(available_datasets()) == set(CLASSES)
    for name, n in CLASSES.items():
        assert get_info(name).num_classes == n, name
    counts = {
        (b, r): len(available_datasets(b, r))
        for b in ("paper", "mini")
        for r in ("source", "target", "fewshot_target")
    }
    assert counts == {
        ("paper", "source"): 8,
        ("paper", "target"): 8,
        ("paper", "fewshot_target"): 3,
        ("mini", "source"): 6,
        ("mini", "target"): 8,
        ("mini", "fewshot_target"): 0,
    }


def _config_names(group: str) -> dict[str, str]:
    """{file stem: its ``name:`` value} of every configs/<group>/*.yaml."""
    out = {}
    for path in sorted((ROOT / "configs" / group).glob("*.yaml")):
        out[path.stem] = yaml.safe_load(path.read_text())["name"]
    return out


def test_dataset_and_target_configs_match_the_registry():
    """configs/dataset/ has one file per registered dataset and configs/target/ one per registered
    (few-shot) target, each named after the dataset it selects; the benchmarks list registered
    datasets of their own benchmark and role."""
    registered = set(available_datasets())
    datasets, targets = _config_names("dataset"), _config_names("target")
    assert {stem for stem, name in datasets.items() if stem != name} == set()
    assert {stem for stem, name in targets.items() if stem != name} == set()
    assert set(datasets.values()) - registered == set()  # a config naming an unknown dataset
    assert registered - set(datasets.values()) == set()  # a dataset without its config
    all_targets = set(available_datasets(role="target")) | set(
        available_datasets(role="fewshot_target")
    )
    assert set(targets.values()) == all_targets
    for path in sorted((ROOT / "configs" / "benchmark").glob("*.yaml")):
        bench = yaml.safe_load(path.read_text())
        name = bench["name"]
        assert set(bench["sources"]) <= set(available_datasets(name, "source")), path.name
        assert set(bench["targets"]) == set(available_datasets(name, "target")), path.name
        fewshot = set(bench.get("fewshot_targets") or [])
        assert fewshot == set(available_datasets(name, "fewshot_target")), path.name


def test_infos_carry_size_and_normalisation():
    for name in PAPER:
        info = get_info(name)
        assert (info.image_size, info.mean, info.std) == (
            224,
            (0.485, 0.456, 0.406),
            (0.229, 0.224, 0.225),
        )
        assert info.split in ("official", "stratified_80_20")
        assert name in info.prepare or "<data_dir>" in info.prepare
    for name in MINI:
        info = get_info(name)
        assert (info.image_size, info.mean, info.std) == (32, (0.5,) * 3, (0.25,) * 3)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'; known: .*dtd.*mini_fabrics"):
        get_info("nope")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_split("nope", "train")
    with pytest.raises(ValueError, match=r"unknown split 'val'; valid: train, test"):
        load_split("mini_digits", "val")
    with pytest.raises(ValueError, match="unknown benchmark"):
        available_datasets("large")
    with pytest.raises(ValueError, match="unknown role"):
        available_datasets(role="sources")


def test_absent_paper_datasets_raise_and_download_nothing(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a dataset tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for name in PAPER:
        assert not is_available(name, tmp_path)
        with pytest.raises(DatasetNotFoundError) as err:
            load_split(name, "train", data_dir=tmp_path)
        assert isinstance(err.value, FileNotFoundError)
        msg = str(err.value)
        assert str(tmp_path / name) in msg
        assert f"python scripts/prepare_data.py {name}" in msg
    assert list(tmp_path.iterdir()) == []  # nothing created, nothing downloaded


# --------------------------------------------------------------------------------------------------
# mini domains: the contract test of each


@pytest.mark.parametrize("name", MINI)
def test_mini_contract(name):
    train, test = load_split(name, "train"), load_split(name, "test")
    n_classes = CLASSES[name]
    assert (len(train), len(test)) == SIZES[name]
    assert len(train.classes) == n_classes and train.classes == test.classes
    x, y = train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert isinstance(y, int) and y == train.labels[0]
    for ds in (train, test):
        assert ds.labels.dtype == np.int64 and ds.labels.shape == (len(ds),)
        assert set(np.unique(ds.labels)) == set(range(n_classes))  # every class in both splits
    if name in MINI_TARGETS:
        # 20-shot, 5-shot and full all possible (held-out pools cap the newer targets at 60)
        assert np.bincount(train.labels).min() >= 60
        assert 30 <= np.bincount(test.labels).min() and np.bincount(test.labels).max() <= 100
    assert mini.split_sizes(name) == SIZES[name]  # what the overview table shows
    # images are the generated uint8 pixels, normalised with mean 0.5 / std 0.25
    domain = mini.generate(name)
    raw = torch.from_numpy(np.array(domain.x_train)).permute(0, 3, 1, 2).float()
    images, labels = train.tensors()
    torch.testing.assert_close(images, (raw / 255.0 - 0.5) / 0.25)
    np.testing.assert_array_equal(labels.numpy(), domain.y_train)


def test_mini_general_is_the_union_of_its_parts():
    """mini_general = mini_animals + mini_shapes + mini_textures: same images and splits, labels
    shifted by 0, 10 and 20, classes prefixed with their source."""
    parts = {"mini_animals": 0, "mini_shapes": 10, "mini_textures": 20}
    info = get_info("mini_general")
    assert (info.benchmark, info.role, info.num_classes) == ("mini", "source", 30)
    for split in ("train", "test"):
        union = load_split("mini_general", split)
        pieces = [load_split(p, split) for p in parts]
        assert len(union) == sum(len(d) for d in pieces)
        assert union.classes == [f"{p}/{c}" for p, d in zip(parts, pieces) for c in d.classes]
        assert (
            union.classes[10] == "mini_shapes/circle"
            and union.classes[29] == "mini_textures/speckle"
        )
        images, labels = union.tensors()
        start = 0
        for (name, offset), piece in zip(parts.items(), pieces):
            x, y = piece.tensors()
            block = slice(start, start + len(piece))
            assert torch.equal(images[block], x), (split, name)
            np.testing.assert_array_equal(labels[block].numpy(), y.numpy() + offset)
            start += len(piece)
    assert len(load_split("mini_general", "train")) == 4000 + 3200 + 3000
    assert len(load_split("mini_general", "test")) == 1000 + 800 + 750
    # another seed: the parts of that seed
    union, animals = mini.generate("mini_general", 1), mini.generate("mini_animals", 1)
    np.testing.assert_array_equal(union.x_test[: len(animals.x_test)], animals.x_test)
    assert mini.split_sizes("mini_general", 1) == (10200, 2550)


@pytest.mark.parametrize("name", MINI)
def test_mini_is_deterministic_for_a_seed(name):
    cached = mini.generate(name, 0)
    fresh = mini.generate.__wrapped__(name, 0)  # bypasses the in-memory cache
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(cached, field), getattr(fresh, field))
    assert not cached.x_train.flags.writeable  # the cache cannot be edited by a caller


@pytest.mark.parametrize(
    "name", ["mini_digits", "mini_polygons", "mini_fabrics", *MINI_TARGETS[4:]]
)
def test_mini_seeds_give_different_draws(name):
    a, b = mini.generate(name, 0), mini.generate.__wrapped__(name, 1)
    assert not np.array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.y_train, b.y_train)  # another split / another label order


@pytest.mark.parametrize("name", MINI)
def test_mini_train_and_test_do_not_overlap(name):
    domain = mini.generate(name)
    train, test = _hashes(domain.x_train), _hashes(domain.x_test)
    assert len(train) == len(domain.x_train) and len(test) == len(domain.x_test)
    assert not train & test
    if domain.train_ids is not None:  # real images: the underlying pictures never cross the split
        raw = {
            "mini_mnist": mini._mnist_raw,
            "mini_animals": mini._animals_raw,
            "mini_digits": mini._digits_raw,
        }[HELD_OUT.get(name, name)]()[0]
        assert not set(domain.train_ids) & set(domain.test_ids)
        assert not _hashes(raw[domain.train_ids]) & _hashes(raw[domain.test_ids])


@pytest.mark.parametrize("name", MINI)
def test_mini_images_are_coloured(name):
    x = mini.generate(name).x_train.astype(np.int16)
    spread = (x.max(axis=3) - x.min(axis=3)).mean(axis=(1, 2))  # mean channel spread per image
    assert np.mean(spread > 12) > 0.9


def test_animals_are_deduplicated_before_the_split():
    images, labels = mini._animals_raw()
    assert images.shape == (10000, 28, 28) and np.bincount(labels).tolist() == [1000] * 10
    first = mini._first_occurrences(images)
    assert len(first) == len(_hashes(images)) == 10000 - 284
    domain = mini.generate("mini_animals")
    used = np.concatenate([domain.train_ids, domain.test_ids])
    assert len(_hashes(images[used])) == len(used) == 5000


@pytest.mark.parametrize("seed", [0, 1])
def test_held_out_targets_use_images_no_expert_trained_on(seed):
    """mini_mnist_warped draws from mini_mnist's test split (the zoo's sources use seed 0), the
    animal targets from the deduplicated animals mini_animals never selected, the two animal
    targets from disjoint images; every image keeps its raw label."""
    used = {}
    for name, source in HELD_OUT.items():
        d = mini.generate(name, seed)
        ids = np.concatenate([d.train_ids, d.test_ids])
        assert len(np.unique(ids)) == len(ids)
        raw_labels = {"mini_mnist": mini._mnist_raw, "mini_animals": mini._animals_raw}[source]()[1]
        np.testing.assert_array_equal(raw_labels[d.train_ids], d.y_train)
        np.testing.assert_array_equal(raw_labels[d.test_ids], d.y_test)
        src = mini.generate(source, mini.ZOO_SEED)
        assert not set(ids) & set(src.train_ids)
        if source == "mini_animals":
            assert not set(ids) & set(src.test_ids)
        else:
            assert set(ids) <= set(src.test_ids)
        used[name] = set(ids)
    assert not used["mini_animal_poses"] & used["mini_animal_outlines"]


def test_mixed_target_joins_three_families():
    d = mini.generate("mini_mixed")
    assert d.classes[:4] == tuple(f"animal/{a}" for a in mini.MIXED_ANIMALS)
    assert d.classes[4] == "shape/circle" and d.classes[-1] == "texture/speckle"
    assert np.bincount(d.y_train).tolist() == [60] * 12
    assert np.bincount(d.y_test).tolist() == [50] * 12


@pytest.mark.parametrize("name", MINI_TARGETS[4:])
def test_new_targets_are_32x32_rgb_uint8_and_cheap(name):
    start = time.perf_counter()
    d = mini.generate.__wrapped__(name, 3)  # a fresh build, not the cache
    seconds = time.perf_counter() - start
    print(f"{name}: {len(d.x_train)} + {len(d.x_test)} images in {seconds:.2f} s")
    for x in (d.x_train, d.x_test):
        assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3)
        assert x.min() < 30 and x.max() > 225  # noise and colours use the whole range
    for y in (d.y_train, d.y_test):
        assert y.dtype == np.int64 and y.min() == 0 and y.max() == CLASSES[name] - 1
    again = mini.generate.__wrapped__(name, 3)
    np.testing.assert_array_equal(again.x_test, d.x_test)
    other = mini.generate(name, 0)
    assert not np.array_equal(other.x_test, d.x_test)


def test_digits_are_scikit_learns_and_keep_80_train_images_per_class():
    images, labels = mini._digits_raw()
    # scikit-learn's documented digits: 1797 images, 8x8, values 0..16, these class counts
    counts = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert images.shape == (1797, 8, 8) and images.min() == 0 and images.max() == 16
    assert np.bincount(labels).tolist() == counts
    expected_test = np.floor(0.2 * np.array(counts) + 0.5).astype(int)  # 36, 36, 35, ...
    domain = mini.generate("mini_digits")
    np.testing.assert_array_equal(np.bincount(domain.y_test), expected_test)
    np.testing.assert_array_equal(np.bincount(domain.y_train), counts - expected_test)
    assert (counts - expected_test).min() == 139


def test_glyph_fonts_render_distinct_glyphs():
    """A font lacking a glyph renders the same 'missing' box for every character."""
    for fonts, chars in (
        (mini.LATIN_FONTS, mini.LATIN),
        (mini.GREEK_FONTS, tuple(mini.GREEK.values())),
    ):
        for font in fonts:
            glyphs = {mini._glyph(font, c).tobytes() for c in chars}
            assert len(glyphs) == len(chars), font


def test_training_augmentation_is_a_reflected_shift():
    plain = load_split("mini_shapes", "train")
    augmented = plain.with_train(True)
    assert augmented.train and not plain.train
    base = plain[7][0]
    padded = F.pad(base[None], (3, 3, 3, 3), mode="reflect")[0]
    crops = [padded[:, i : i + 32, j : j + 32] for i in range(7) for j in range(7)]
    torch.manual_seed(0)
    draws = [augmented[7][0] for _ in range(30)]
    for d in draws:
        assert any(torch.equal(d, c) for c in crops)
    assert len({d.numpy().tobytes() for d in draws}) > 5
    assert torch.equal(plain[7][0], base)  # no augmentation without train=True


def test_subset_is_cheap_and_consistent():
    ds = load_split("mini_letters", "train")
    sub = ds.subset([5, 2, 2])
    assert sub._source is ds._source  # shares the split's tensor: no copy of the images
    np.testing.assert_array_equal(sub.labels, ds.labels[[5, 2, 2]])
    assert torch.equal(sub[0][0], ds[5][0]) and sub.classes == ds.classes
    assert torch.equal(ds.subset(np.arange(4)).subset([3])[0][0], ds[3][0])
    assert len(ds.subset([])) == 0
    for bad in ([len(ds)], [-1], [[1, 2]], [0.5]):
        with pytest.raises(ValueError, match="subset indices"):
            ds.subset(bad)


def test_items_are_copies_of_the_cache():
    ds = load_split("mini_digits", "test")
    x, _ = ds[0]
    before = x.clone()
    x.add_(100.0)
    assert torch.equal(ds[0][0], before)


def test_from_tensors_builds_an_in_memory_dataset():
    info = get_info("mini_digits")
    images = torch.randn(6, 3, 32, 32)
    ds = ImageDataset.from_tensors(images, np.array([0, 1, 2, 0, 1, 2]), ["a", "b", "c"], info)
    assert torch.equal(ds[4][0], images[4]) and ds[4][1] == 1
    with pytest.raises(ValueError, match="labels must lie in"):
        ImageDataset.from_tensors(images, np.full(6, 3), ["a", "b", "c"], info)


def test_mini_loading_is_fast_enough_for_cpu_training():
    ds = load_split("mini_mnist", "train", train=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=256, shuffle=True, num_workers=0)
    import time

    start = time.perf_counter()
    seen = sum(len(y) for _, y in loader)
    rate = seen / (time.perf_counter() - start)
    assert seen == 4000
    assert rate > 2000, f"{rate:.0f} images/s"


# --------------------------------------------------------------------------------------------------
# fake paper datasets on disk


def _write_image(path, colour, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_image_folder_dataset_gets_a_stratified_split_and_paper_transforms(tmp_path):
    root = tmp_path / "flood_depth" / "images"
    for i in range(13):
        _write_image(root / "depth" / f"{i}.png", (200, 30, 60))
    for i in range(7):
        _write_image(root / "no_depth" / f"{i}.png", (200, 30, 60))
    train, test = (
        load_split("flood_depth", "train", tmp_path),
        load_split("flood_depth", "test", tmp_path),
    )
    assert train.classes == ["depth", "no_depth"]
    # floor(0.2 n + 0.5) test images per class: 13 -> 3, 7 -> 1
    assert np.bincount(test.labels).tolist() == [3, 1]
    assert np.bincount(train.labels).tolist() == [10, 6]
    assert not set(train._source.paths[j] for j in train._indices) & set(
        test._source.paths[j] for j in test._indices
    )
    x, _ = test[0]
    expected = (
        torch.tensor([200, 30, 60]) / 255.0 - torch.tensor([0.485, 0.456, 0.406])
    ) / torch.tensor([0.229, 0.224, 0.225])
    assert x.shape == (3, 224, 224)
    torch.testing.assert_close(x, expected[:, None, None].expand(3, 224, 224), atol=1e-5, rtol=0)
    assert train.with_train(True)[0][0].shape == (3, 224, 224)


def test_image_folder_with_train_and_test_folders_keeps_them(tmp_path):
    for split, n in (("train", 4), ("test", 2)):
        for cls in ("depth", "no_depth"):
            for i in range(n):
                _write_image(tmp_path / "flood_depth" / split / cls / f"{i}.jpg", (9, 9, 9))
    assert len(load_split("flood_depth", "train", tmp_path)) == 8
    assert len(load_split("flood_depth", "test", tmp_path)) == 4


def test_wrong_class_count_is_reported(tmp_path):
    for cls in ("a", "b", "c"):
        _write_image(tmp_path / "flood_depth" / "images" / cls / "0.png", (1, 2, 3))
    with pytest.raises(ValueError, match="has 3 classes, expected 2"):
        load_split("flood_depth", "train", tmp_path)


def test_cifar_style_batches_load_with_the_official_split(tmp_path):
    root = tmp_path / "cucumber9" / "prototype_1"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(labels):
        return {"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8), "labels": labels}

    for i in range(1, 6):
        with open(root / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(list(range(9))), f)
    test_batch = batch([8, 7, 6])
    with open(root / "test_batch", "wb") as f:
        pickle.dump(test_batch, f)
    train, test = (
        load_split("cucumber9", "train", tmp_path),
        load_split("cucumber9", "test", tmp_path),
    )
    assert (len(train), len(test)) == (45, 3)
    assert train.classes == ["2L", "L", "M", "S", "2S", "BL", "BM", "BS", "C"]
    assert test.labels.tolist() == [8, 7, 6]
    pixels = test_batch["data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    np.testing.assert_array_equal(np.asarray(test._source.load(test._indices[0])), pixels)


def test_torchvision_dataset_is_read_without_download(tmp_path):
    """A minimal Oxford-IIIT Pets layout, read through torchvision's OxfordIIITPet."""
    base = tmp_path / "pets" / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True)
    for split, tag in (("trainval", 0), ("test", 1)):
        lines = []
        for c in range(37):
            image_id = f"breed{c:02d}_{tag}"
            _write_image(base / "images" / f"{image_id}.jpg", (c, 0, 0), size=(8, 8))
            lines.append(f"{image_id} {c + 1} 1 1")
        (base / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    train, test = load_split("pets", "train", tmp_path), load_split("pets", "test", tmp_path)
    assert (len(train), len(test)) == (37, 37)
    assert train.labels.tolist() == list(range(37)) and len(train.classes) == 37
    assert train.classes[3] == "Breed03"
    assert test[5][0].shape == (3, 224, 224)


# --------------------------------------------------------------------------------------------------
# command line


def test_overview_table_lists_every_dataset(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "zoo.data", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()[3:]}
    assert set(rows) == set(CLASSES)
    for name, n in CLASSES.items():
        assert int(rows[name][3]) == n, name
    for name in PAPER:
        assert rows[name][4:] == ["-", "-", "no"]
    for name in MINI:
        assert [int(rows[name][4]), int(rows[name][5])] == list(SIZES[name])
        assert rows[name][6] == "yes"


def _prepare_script():
    spec = importlib.util.spec_from_file_location(
        "prepare_data", ROOT / "scripts" / "prepare_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prepare_script(tmp_path, capsys):
    script = _prepare_script()
    assert script.main(["nope", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'nope'" in err and "dtd" in err and "mini_digits" in err

    assert script.main(["mini_polygons", "dtd", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mini_polygons: 8 classes, train 800, test 800 images" in out
    assert "https://www.robots.ox.ac.uk/~vgg/data/dtd/" in out
    assert f"NOT PRESENT at {tmp_path / 'dtd'}" in out
    assert script.main(["dtd", "--check", "--data-dir", str(tmp_path)]) == 1
    capsys.readouterr()
    assert list(tmp_path.iterdir()) == []


def test_prepare_arranges_the_flood_images(tmp_path, capsys):
    raw = tmp_path / "flood_depth" / "raw"
    (raw / "eu-flood-dataset" / "relevance").mkdir(parents=True)
    (raw / "eu-flood-dataset" / "relevance" / "depth.txt").write_text("11\n13\n")
    for stem in ("11", "12", "13", "14", "15"):
        _write_image(raw / "imgs_small" / f"{stem}.jpg", (5, 5, 5))
    assert _prepare_script().main(["flood_depth", "--check", "--data-dir", str(tmp_path)]) == 0
    assert "arranged 5 images: 2 depth, 3 no_depth" in capsys.readouterr().out
    ds = load_split("flood_depth", "train", tmp_path)
    assert ds.classes == ["depth", "no_depth"]


def test_mini_module_docstring_names_every_domain():
    for name in MINI:
        assert name in mini.__doc__


def test_gzip_pickles_are_read_without_the_package_loader():
    """The animal-mnist loader imports tensorflow; the domain reads the files itself."""
    folder = mini._package_dir("animal_mnist") / "data" / "Animal_MNIST"
    with gzip.open(folder / "animal_label_version_3.gz", "rb") as f:
        labels = pickle.load(f)
    np.testing.assert_array_equal(mini._animals_raw()[1], labels)
    assert "animal_mnist.dataset_Loader" not in sys.modules
