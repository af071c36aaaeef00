"""The paper's 19 datasets as data: where to get each, the folder layout it is read from, its loader
and its split policy. No file is read here (:mod:`zoo.data.paper` reads them).

A dataset's classes come from its files; ``num_classes`` is what the paper (and the dataset's page)
states, and loading checks the two agree. ``split`` is "official" where the dataset ships a
train/test split, else "stratified_80_20": a seeded stratified 80/20 split of everything
(:func:`zoo.samplers.stratified_split`, seed :data:`SPLIT_SEED`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAPER_SIZE = 224
SPLIT_SEED = 0  # the seed of every stratified 80/20 split
PREPARE_CMD = "python scripts/prepare_data.py"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class PaperSpec:
    """One paper dataset: what it is, where to get it, how its folder is laid out and read."""

    name: str
    role: str
    num_classes: int
    title: str
    url: str
    loader: str  # torchvision:<Class> | imagefolder | cifar_pickle | cub | gldv2 | imat
    split: str
    layout: str  # expected content of <data_dir>/<name>/
    required: tuple[str, ...] = ()  # relative paths that must exist (imagefolder: checked apart)
    tv_train: tuple[dict, ...] = ()  # torchvision kwargs of the datasets forming each split
    tv_test: tuple[dict, ...] = ()
    tv_kwargs: tuple[tuple[str, Any], ...] = ()
    class_depth: int = 1  # imagefolder: class = folder path this deep under images/
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS
    class_names: tuple[str, ...] = ()  # cifar_pickle: the classes when batches.meta names none
    download: str = ""  # what --download does; "" = no automatic download
    notes: str = ""


_FOLDER_LAYOUT = (
    "images/<class>/*.<ext>   (or train/<class>/... and test/<class>/... for a fixed split)"
)

PAPER: tuple[PaperSpec, ...] = (
    # sources
    PaperSpec(
        "resisc45",
        "source",
        45,
        "NWPU-RESISC45 (aerial scenes, 31,500 images, 700 per class)",
        "https://gcheng-nwpu.github.io/#Datasets (the NWPU-RESISC45.rar archive)",
        "imagefolder",
        "stratified_80_20",
        _FOLDER_LAYOUT
        + "\n  e.g. images/airplane/airplane_001.jpg (the archive's NWPU-RESISC45/ folder"
        " renamed to images/)",
    ),
    PaperSpec(
        "food101",
        "source",
        101,
        "Food-101 (101,000 images; official 75,750 train / 25,250 test)",
        "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/",
        "torchvision:Food101",
        "official",
        "food-101/images/<class>/*.jpg and food-101/meta/{train,test}.json  (food-101.tar.gz extracted)",
        ("food-101/images", "food-101/meta"),
        tv_train=({"split": "train"},),
        tv_test=({"split": "test"},),
        download="torchvision.datasets.Food101(download=True) (5 GB)",
    ),
    PaperSpec(
        "logo2k",
        "source",
        2341,
        "Logo-2K+ (167,140 images of 2,341 brands in 10 categories)",
        "https://github.com/msn199959/Logo-2k-plus-Dataset",
        "imagefolder",
        "stratified_80_20",
        "images/<category>/<brand>/*.jpg   (the archive's Logo-2K+/ folder renamed to images/; a class"
        " is a <category>/<brand> folder)",
        class_depth=2,
    ),
    PaperSpec(
        "landmarks_v2",
        "source",
        81313,
        "Google Landmarks Dataset v2, 'clean' training subset (1,580,470 images, 81,313 landmarks)",
        "https://github.com/cvdfoundation/google-landmark (train_clean.csv and the train_*.tar shards)",
        "gldv2",
        "stratified_80_20",
        "train_clean.csv (columns landmark_id,images) and train/<a>/<b>/<c>/<image id>.jpg  (the"
        " train_000.tar ... train_499.tar shards extracted into train/)",
        ("train_clean.csv", "train"),
    ),
    PaperSpec(
        "inat2019",
        "source",
        1010,
        "iNaturalist 2019 (268,243 images of 1,010 species)",
        "https://github.com/visipedia/inat_comp/tree/master/2019",
        "torchvision:INaturalist",
        "stratified_80_20",
        "2019/<supercategory>/<category id>/*.jpg   (train_val2019.tar.gz extracted and its"
        " train_val2019/ folder renamed to 2019/, as torchvision's INaturalist(version='2019') expects)",
        ("2019",),
        tv_kwargs=(("version", "2019"),),
        download="torchvision.datasets.INaturalist(version='2019', download=True) (82 GB)",
        notes="torchvision reads train and val images together; the official val split has 3 images"
        " per class, so a stratified 80/20 split is used.",
    ),
    PaperSpec(
        "imat_product2019",
        "source",
        2019,
        "iMaterialist Challenge on Product Recognition 2019 (FGVC6; 1,011,532 train / 10,095 val)",
        "https://github.com/malongtech/imaterialist-product-2019 (train.json, val.json and the images)",
        "imat",
        "official",
        "train.json, val.json ({'images': [{'id', 'url', 'class'}]}), train/<id>, val/<id>  (each image"
        " file named by its id; images whose URL is dead are skipped)",
        ("train.json", "val.json", "train", "val"),
        notes="the official validation set (labelled, about 5 per class) is the test split.",
    ),
    PaperSpec(
        "imagenet",
        "source",
        1000,
        "ImageNet ILSVRC-2012 (1.28 M train / 50,000 val)",
        "https://image-net.org/download.php (ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar,"
        " ILSVRC2012_devkit_t12.tar.gz)",
        "torchvision:ImageNet",
        "official",
        "meta.bin, train/<wnid>/*.JPEG, val/<wnid>/*.JPEG  (put the three archives in this folder and run"
        " the prepare command: torchvision's ImageNet parses them, no download)",
        ("meta.bin", "train", "val"),
        tv_train=({"split": "train"},),
        tv_test=({"split": "val"},),
        notes="the official validation set is the test split.",
    ),
    PaperSpec(
        "places365",
        "source",
        365,
        "Places365-Standard, small (256x256) images (1.8 M train / 36,500 val)",
        "http://places2.csail.mit.edu/download.html",
        "torchvision:Places365",
        "official",
        "categories_places365.txt, places365_train_standard.txt, places365_val.txt,"
        " data_256_standard/..., val_256/...  (filelist_places365-standard.tar, train_256_places365standard.tar"
        " and val_256.tar extracted)",
        (
            "categories_places365.txt",
            "places365_train_standard.txt",
            "places365_val.txt",
            "data_256_standard",
            "val_256",
        ),
        tv_train=({"split": "train-standard"},),
        tv_test=({"split": "val"},),
        tv_kwargs=(("small", True),),
        download="torchvision.datasets.Places365(small=True, download=True) (26 GB)",
        notes="the official validation set is the test split.",
    ),
    # targets
    PaperSpec(
        "cucumber9",
        "target",
        9,
        "CUCUMBER-9 (cucumber grades 2L, L, M, S, 2S, BL, BM, BS, C; 32x32 RGB, 2,475 train / 495 test)",
        "https://github.com/workpiles/CUCUMBER-9 (prototype_1)",
        "cifar_pickle",
        "official",
        "data_batch_1 ... data_batch_5, test_batch (and optionally batches.meta)  (the CIFAR-10-style"
        " python batches of prototype_1, directly here or in prototype_1/)",
        notes="class names come from batches.meta when present, else the order above.",
        class_names=("2L", "L", "M", "S", "2S", "BL", "BM", "BS", "C"),
    ),
    PaperSpec(
        "dtd",
        "target",
        47,
        "Describable Textures Dataset (5,640 images; partition 1)",
        "https://www.robots.ox.ac.uk/~vgg/data/dtd/",
        "torchvision:DTD",
        "official",
        "dtd/dtd/images/<class>/*.jpg and dtd/dtd/labels/{train,val,test}1.txt  (dtd-r1.0.1.tar.gz"
        " extracted into dtd/)",
        ("dtd/dtd",),
        tv_train=({"split": "train", "partition": 1}, {"split": "val", "partition": 1}),
        tv_test=({"split": "test", "partition": 1},),
        download="torchvision.datasets.DTD(download=True) (600 MB)",
        notes="training split = official train + val of partition 1 (3,760); test = its test (1,880).",
    ),
    PaperSpec(
        "magnetic_tile",
        "target",
        6,
        "Magnetic Tile Defects (1,344 images: blowhole, break, crack, fray, uneven, free)",
        "https://github.com/abin24/Magnetic-tile-defect-datasets.",
        "imagefolder",
        "stratified_80_20",
        "images/MT_<Blowhole|Break|Crack|Fray|Free|Uneven>/Imgs/*.jpg  (the repository's MT_* folders"
        " moved into images/; the .png defect masks next to the images are ignored)",
        extensions=(".jpg",),
    ),
    PaperSpec(
        "icassava",
        "target",
        5,
        "iCassava 2019 (FGVC6 cassava disease; 9,436 labelled images: cbb, cbsd, cgm, cmd, healthy)",
        "https://www.kaggle.com/c/cassava-disease/data (train.zip)",
        "imagefolder",
        "stratified_80_20",
        "images/<cbb|cbsd|cgm|cmd|healthy>/*.jpg  (train.zip's train/ folder renamed to images/)",
        notes="the competition's test images are unlabelled, so the labelled set is split 80/20.",
    ),
    PaperSpec(
        "flowers102",
        "target",
        102,
        "Oxford Flowers-102 (8,189 images)",
        "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/",
        "torchvision:Flowers102",
        "official",
        "flowers-102/jpg/*.jpg, flowers-102/imagelabels.mat, flowers-102/setid.mat",
        ("flowers-102/jpg", "flowers-102/imagelabels.mat", "flowers-102/setid.mat"),
        tv_train=({"split": "train"}, {"split": "val"}),
        tv_test=({"split": "test"},),
        download="torchvision.datasets.Flowers102(download=True) (330 MB)",
        notes="training split = official train + val (2,040); test = official test (6,149).",
    ),
    PaperSpec(
        "pets",
        "target",
        37,
        "Oxford-IIIT Pets (7,349 images; official 3,680 trainval / 3,669 test)",
        "https://www.robots.ox.ac.uk/~vgg/data/pets/",
        "torchvision:OxfordIIITPet",
        "official",
        "oxford-iiit-pet/images/*.jpg and oxford-iiit-pet/annotations/{trainval,test}.txt",
        ("oxford-iiit-pet/images", "oxford-iiit-pet/annotations"),
        tv_train=({"split": "trainval"},),
        tv_test=({"split": "test"},),
        download="torchvision.datasets.OxfordIIITPet(download=True) (800 MB)",
    ),
    PaperSpec(
        "flood_depth",
        "target",
        2,
        "European Flood 2013, depth task (3,710 images: relevant for estimating the inundation depth"
        " or not)",
        "https://github.com/cvjena/eu-flood-dataset (annotations) and its 'Images resized to 512"
        " pixels' archive",
        "imagefolder",
        "stratified_80_20",
        "images/{depth,no_depth}/*.jpg  -- or let the prepare command build it: put the repository"
        " checkout at raw/eu-flood-dataset/ and the extracted images (named <id>.jpg) anywhere under"
        " raw/",
        notes="class 'depth' = the images listed in relevance/depth.txt, 'no_depth' = all others.",
    ),
    PaperSpec(
        "ucmerced",
        "target",
        21,
        "UC Merced Land Use (2,100 aerial images, 100 per class)",
        "http://weegee.vision.ucmerced.edu/datasets/landuse.html",
        "imagefolder",
        "stratified_80_20",
        "images/<class>/*.tif  (the archive's UCMerced_LandUse/Images/ folder renamed to images/)",
    ),
    # few-shot targets
    PaperSpec(
        "cub200",
        "fewshot_target",
        200,
        "Caltech-UCSD Birds-200-2011 (11,788 images; official 5,994 train / 5,794 test)",
        "https://www.vision.caltech.edu/datasets/cub_200_2011/",
        "cub",
        "official",
        "CUB_200_2011/{images.txt, image_class_labels.txt, train_test_split.txt, classes.txt, images/}"
        "  (CUB_200_2011.tgz extracted)",
        (
            "CUB_200_2011/images.txt",
            "CUB_200_2011/image_class_labels.txt",
            "CUB_200_2011/train_test_split.txt",
            "CUB_200_2011/classes.txt",
            "CUB_200_2011/images",
        ),
    ),
    PaperSpec(
        "cars",
        "fewshot_target",
        196,
        "Stanford Cars (16,185 images; official 8,144 train / 8,041 test)",
        "https://ai.stanford.edu/~jkrause/cars/car_dataset.html (mirrors: the original URL is gone)",
        "torchvision:StanfordCars",
        "official",
        "stanford_cars/{devkit/, cars_train/, cars_test/, cars_test_annos_withlabels.mat}",
        (
            "stanford_cars/devkit",
            "stanford_cars/cars_train",
            "stanford_cars/cars_test",
            "stanford_cars/cars_test_annos_withlabels.mat",
        ),
        tv_train=({"split": "train"},),
        tv_test=({"split": "test"},),
        notes="torchvision can no longer download it: get the files from a mirror.",
    ),
    PaperSpec(
        "belga_logos",
        "fewshot_target",
        37,
        "BelgaLogos (10,000 press images; the local ground truth boxes 37 different logos)",
        "http://www-sop.inria.fr/members/Alexis.Joly/BelgaLogos/BelgaLogos.html",
        "imagefolder",
        "stratified_80_20",
        "images/<logo>/*.jpg  (one crop per bounding box of the local ground truth, in the folder of"
        " its logo)",
        notes="classification of the annotated logo boxes (37 classes), as the paper's 37 classes imply.",
    ),
)
PAPER_SPECS = {s.name: s for s in PAPER}


def prepare_text(spec: PaperSpec) -> str:
    """Human instructions for ``spec``: source, expected layout, split policy, download."""
    lines = [
        spec.title,
        f"  get it from: {spec.url}",
        f"  put it under <data_dir>/{spec.name}/ as: {spec.layout}",
    ]
    if spec.split == "stratified_80_20":
        lines.append(f"  split: seeded stratified 80/20 (seed {SPLIT_SEED})")
    else:
        lines.append("  split: the official one")
    if spec.notes:
        lines.append(f"  note: {spec.notes}")
    lines.append(
        f"  automatic download: `{PREPARE_CMD} {spec.name} --download` uses {spec.download}"
        if spec.download
        else "  automatic download: none (licence or hosting requires a manual download)"
    )
    return "\n".join(lines)
