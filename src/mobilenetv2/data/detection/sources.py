"""Detection sources: images with boxes (xyxy pixels, labels 1..K, 0 = background) from every layout, as datasets.

Sources (``data``): the built-in ``digits`` (generated canvases with printed digits and exact boxes); a folder of images
with Pascal VOC ``.xml`` beside them, paired by file stem (never by the XML's ``<filename>``), directly or under
``train/`` and ``val/``; a VOC root (``Annotations/`` + ``JPEGImages/``, ``ImageSets/Main/{train,val}.txt``); COCO
JSON (a ``.json`` file, a folder with ``train.json`` + ``val.json`` or ``annotations/instances_{train,val}*.json``);
CSV (a ``.csv`` file with ``path,xmin,ymin,xmax,ymax,label`` or a folder with ``train.csv`` + ``val.csv``). Every
annotation and image header is read when the source is built, so bad input is one error line naming the file before
any training; boxes are clipped to their image and those left with zero area are dropped and counted.
"""

from __future__ import annotations

import csv
import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mobilenetv2.data.detection.targets import make_target
from mobilenetv2.data.detection.tiles import tile_windows
from mobilenetv2.data.digit_scenes import BOX_CANVAS, DIGIT_CLASSES, DigitCanvases, digit_items
from mobilenetv2.data.images import IMAGE_EXTENSIONS, is_image_file, load_image, open_image
from mobilenetv2.data.splits import seeded_split
from mobilenetv2.data.transforms import sample_seed
from mobilenetv2.errors import UserError

logger = logging.getLogger(__name__)

BACKGROUND = "background"
CSV_COLUMNS = ("path", "xmin", "ymin", "xmax", "ymax", "label")
LAYOUTS = ("images with Pascal VOC .xml beside them (optionally under train/ and val/), a VOC root (Annotations/ + "
           "JPEGImages/), a COCO .json (or a folder with train.json + val.json or annotations/instances_{train,val}*.json), "
           "a .csv with path,xmin,ymin,xmax,ymax,label (or a folder with train.csv + val.csv), or 'digits'")


def one_line(text: object) -> str:
    return " ".join(str(text).split())


# -- datasets ----------------------------------------------------------------------------------------------------------
@dataclass
class DetectionRecord:
    path: Path
    boxes: np.ndarray  # [M, 4] float32 xyxy pixels (clipped to the image; zero-area boxes already dropped)
    labels: np.ndarray  # [M] int64 1..K
    width: int
    height: int


def read_record(record: DetectionRecord) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    image = load_image(record.path)
    if image.size != (record.width, record.height):
        raise UserError(f"{record.path}: image is now {image.size[0]}x{image.size[1]}, was {record.width}x{record.height} "
                        f"when its annotations were read")
    return image, record.boxes, record.labels


class DetectionImages(Dataset):
    """Records x tile windows; item i -> (image tensor [3, S, S] normalised, target dict with keys boxes, labels,
    image_size, window, image_id as tensors). ``reader(item)`` gives (PIL image, boxes [M, 4], labels [M])."""

    def __init__(self, items: list[Any], reader: Callable[[Any], tuple[Image.Image, np.ndarray, np.ndarray]] = read_record,
                 sizes: list[tuple[int, int]] | None = None) -> None:
        self.items, self.reader = list(items), reader
        self.sizes = sizes if sizes is not None else [(r.width, r.height) for r in self.items]  # (width, height)
        self.transform: Callable | None = None
        self.seed, self.epoch = 0, 0
        self.set_tiles(None)

    def set_tiles(self, tile: int | None, overlap: float = 0.25) -> None:
        """Cut each image into ``tile_windows``; ``None``: one window per image."""
        self.windows = [(i, w) for i, (width, height) in enumerate(self.sizes)
                        for w in tile_windows(width, height, tile, overlap)]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int):
        image_id, window = self.windows[index]
        image, boxes, labels = self.reader(self.items[image_id])
        if self.transform is None:
            return image, make_target(boxes, labels, (image.height, image.width), window, image_id)
        with torch.random.fork_rng(devices=[]):  # augmentation depends only on (seed, epoch, index)
            torch.default_generator.manual_seed(sample_seed(self.seed, self.epoch, index))
            return self.transform(image, boxes, labels, window, image_id)


@dataclass
class DetectionSource:
    class_names: list[str]  # background first
    splits: dict[str, DetectionImages]  # "train", "val", "all"
    dropped: int = 0  # boxes dropped (zero area after clipping to the image)
    in_memory: bool = False  # True for the built-in digits
    first_dropped: str | None = None
    skipped: list[str] = field(default_factory=list)  # images without annotations (folder layout)


# -- annotations -> records --------------------------------------------------------------------------------------------
@dataclass
class RawRecord:
    """One image's annotations as read: boxes xyxy in pixels (not yet checked) and class names."""

    path: Path
    boxes: list[list[float]]
    names: list[str]
    source: Path  # the annotation file, named in errors


def number(text: Any, where: object, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {what} must be a number, got {one_line(text)[:40]!r}") from None
    if not np.isfinite(value):
        raise UserError(f"{where}: {what} must be a finite number, got {text!r}")
    return value


def image_size(path: Path, annotation: Path) -> tuple[int, int]:
    """(width, height) as the model will see the image (turned upright by its EXIF orientation), from the header."""
    if not path.is_file():
        raise UserError(f"{annotation}: names a missing image {path}")
    try:
        with open_image(path) as image:
            width, height = image.size
            turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except UserError as exc:
        raise UserError(one_line(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for a broken header
        raise UserError(f"{path}: not a readable image ({one_line(exc)[:80]})") from exc
    return (height, width) if turned else (width, height)


def to_record(raw: RawRecord, class_names: list[str], origin: str) -> tuple[DetectionRecord, int]:
    """Check the class names, clip the boxes to the image and drop those left with zero area (counted)."""
    width, height = image_size(raw.path, raw.source)
    index = {name: i for i, name in enumerate(class_names) if i > 0}
    for name in raw.names:
        if name not in index:
            raise UserError(f"{raw.source}: class {name!r} is not among the classes of {origin} "
                            f"({', '.join(class_names[1:])})")
    boxes = np.asarray(raw.boxes, dtype=np.float32).reshape(-1, 4)
    boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    labels = np.array([index[n] for n in raw.names], dtype=np.int64)
    return DetectionRecord(raw.path, boxes[keep], labels[keep], width, height), int((~keep).sum())


def read_classes(root: Path) -> list[str] | None:
    """classes.txt at the data root: one name a line, background implied first unless the first line is background."""
    path = root / "classes.txt"
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    names = names if names and names[0] == BACKGROUND else [BACKGROUND, *names]
    if len(names) < 2 or len(set(names)) != len(names):
        raise UserError(f"{path}: needs at least one class name and no repeated names")
    return names


def assemble(root: Path, split_raws: dict[str, list[RawRecord]], declared: list[str] | None, val_split: float,
             seed: int, skipped: list[str] | None = None) -> DetectionSource:
    """Class names (classes.txt, else declared, else the sorted names of the training annotations), records, splits."""
    listed = read_classes(root)
    if listed is not None:
        class_names, origin = listed, str(root / "classes.txt")
    elif declared is not None:
        class_names, origin = [BACKGROUND, *dict.fromkeys(declared)], "the training annotations"
    else:
        named = split_raws["train"] if "val" in split_raws else [r for raws in split_raws.values() for r in raws]
        class_names = [BACKGROUND, *sorted({n for r in named for n in r.names} - {BACKGROUND})]
        origin = "the training annotations"
    dropped, first, records = 0, None, {}
    for split, raws in split_raws.items():
        records[split] = []
        for raw in raws:
            record, lost = to_record(raw, class_names, origin)
            records[split].append(record)
            dropped += lost
            first = first or (str(raw.source) if lost else None)
    if "val" not in records:
        everything = records.pop("all")
        train, val = seeded_split(len(everything), val_split, seed)
        records = {"train": [everything[i] for i in train], "val": [everything[i] for i in val]}
    records["all"] = records["train"] + records["val"]
    splits = {s: DetectionImages(r) for s, r in records.items()}
    return DetectionSource(class_names, splits, dropped, first_dropped=first, skipped=skipped or [])


def parse_voc_xml(xml: Path, image: Path) -> RawRecord:
    """One Pascal VOC annotation file; the image is given (paired by stem, not by ``<filename>``)."""
    try:
        root = ET.parse(xml).getroot()
    except (ET.ParseError, OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{xml}: not valid Pascal VOC XML ({one_line(exc)[:80]})") from exc
    if root.tag != "annotation":
        raise UserError(f"{xml}: not Pascal VOC XML (the root element is <{root.tag}>, expected <annotation>)")
    boxes, names = [], []
    for k, obj in enumerate(root.iter("object")):
        name, bndbox = obj.findtext("name"), obj.find("bndbox")
        if not name or not name.strip() or bndbox is None:
            raise UserError(f"{xml}: object {k + 1} needs a <name> and a <bndbox> with xmin, ymin, xmax, ymax")
        boxes.append([number(bndbox.findtext(c), xml, f"object {k + 1} {c}") for c in ("xmin", "ymin", "xmax", "ymax")])
        names.append(name.strip())
    return RawRecord(image, boxes, names, xml)


def images_by_stem(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and is_image_file(path):
            found.setdefault(path.stem, path)
    return found


def xml_folder(folder: Path) -> tuple[list[RawRecord], list[str]]:
    """Images with a .xml of the same stem beside them; images without one are skipped (returned)."""
    images = images_by_stem(folder)
    xmls = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".xml")
    if not xmls:
        raise UserError(f"{folder}: no Pascal VOC .xml annotations; expected {LAYOUTS}")
    raws = []
    for xml in xmls:
        if xml.stem not in images:
            raise UserError(f"{xml}: no image beside it named {xml.stem} + one of {', '.join(IMAGE_EXTENSIONS)}")
        raws.append(parse_voc_xml(xml, images[xml.stem]))
    stems = {x.stem for x in xmls}
    return raws, [str(p) for s, p in images.items() if s not in stems]


def find_voc_root(root: Path) -> Path | None:
    """The folder holding Annotations/ and JPEGImages/ (root or up to two levels below)."""
    for candidate in [root, *sorted(root.glob("*")), *sorted(root.glob("*/*"))]:
        if (candidate / "Annotations").is_dir() and (candidate / "JPEGImages").is_dir():
            return candidate
    return None


def voc_root_raws(root: Path) -> dict[str, list[RawRecord]]:
    images = images_by_stem(root / "JPEGImages")
    listings = {s: root / "ImageSets" / "Main" / f"{s}.txt" for s in ("train", "val")}
    if all(p.is_file() for p in listings.values()):
        stems = {s: [line.split()[0] for line in p.read_text(errors="replace").splitlines() if line.strip()]
                 for s, p in listings.items()}
    else:
        stems = {"all": sorted(p.stem for p in (root / "Annotations").glob("*.xml"))}
    raws: dict[str, list[RawRecord]] = {}
    for split, names in stems.items():
        raws[split] = []
        for stem in names:
            xml = root / "Annotations" / f"{stem}.xml"
            where = listings.get(split, xml)
            if not xml.is_file() or stem not in images:
                missing = xml if not xml.is_file() else root / "JPEGImages" / f"{stem}.jpg"
                raise UserError(f"{where}: {stem} has no {'annotation' if missing == xml else 'image'} ({missing})")
            raws[split].append(parse_voc_xml(xml, images[stem]))
    return raws


def find_image(name: str, bases: list[Path], annotation: Path) -> Path:
    for base in bases:
        if (base / name).is_file():
            return base / name
    raise UserError(f"{annotation}: names a missing image {name!r} (looked in {', '.join(str(b) for b in bases)})")


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as UTF-8 JSON ({one_line(exc)[:80]})") from exc


def coco_raws(path: Path, bases: list[Path]) -> tuple[list[RawRecord], list[str]]:
    """The images of a COCO detection JSON with their boxes (xywh -> xyxy; crowd regions left out) and the category
    names sorted by category id."""
    data = load_json(path)
    try:
        categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        images = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
        boxes: dict[int, list] = {i: [] for i in images}
        names: dict[int, list] = {i: [] for i in images}
        for k, ann in enumerate(data.get("annotations", [])):
            image_id, category = int(ann["image_id"]), int(ann["category_id"])
            if image_id not in images:
                raise UserError(f"{path}: annotation {k} names image id {image_id}, which is not in \"images\"")
            if category not in categories:
                raise UserError(f"{path}: annotation {k} names category id {category}, which is not in \"categories\" "
                                f"(ids {sorted(categories)[:20]})")
            if ann.get("iscrowd", 0):
                continue
            if not isinstance(ann["bbox"], list) or len(ann["bbox"]) != 4:
                raise UserError(f"{path}: annotation {k} bbox must be [x, y, width, height], got {ann['bbox']!r:.60}")
            x, y, w, h = (number(v, path, f"annotation {k} bbox") for v in ann["bbox"])
            boxes[image_id].append([x, y, x + w, y + h])
            names[image_id].append(categories[category])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"{path}: not a COCO detection JSON (needs \"images\" with id and file_name, \"annotations\" "
                        f"with image_id, category_id and bbox, and \"categories\" with id and name; {type(exc).__name__}: "
                        f"{one_line(exc)[:60]})") from exc
    raws = [RawRecord(find_image(images[i], bases, path), boxes[i], names[i], path) for i in sorted(images)]
    return raws, [categories[c] for c in sorted(categories)]


def coco_split_files(root: Path) -> dict[str, Path] | None:
    if (root / "train.json").is_file() and (root / "val.json").is_file():
        return {"train": root / "train.json", "val": root / "val.json"}
    found = {s: sorted((root / "annotations").glob(f"instances_{s}*.json")) for s in ("train", "val")}
    return {s: files[0] for s, files in found.items()} if all(found.values()) else None


def coco_source(files: dict[str, Path], root: Path, val_split: float, seed: int) -> DetectionSource:
    split_raws, declared = {}, None
    for split, path in files.items():
        suffix = path.stem.removeprefix("instances_")
        bases = [path.parent, path.parent / "images", root, root / "images", root / suffix, root / "images" / suffix]
        split_raws[split], names = coco_raws(path, list(dict.fromkeys(bases)))
        declared = names if split in ("train", "all") else declared
    return assemble(root, split_raws, declared, val_split, seed)


def csv_raws(path: Path, base: Path) -> list[RawRecord]:
    """Rows of path,xmin,ymin,xmax,ymax,label grouped by image (first-seen order); empty box fields: no objects."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path}: missing column(s) {', '.join(missing)}; the header must be {','.join(CSV_COLUMNS)}")
            raws: dict[str, RawRecord] = {}
            for row in reader:
                where = f"{path} line {reader.line_num}"
                name = (row["path"] or "").strip()
                if not name:
                    raise UserError(f"{where}: empty path")
                if name not in raws:
                    raws[name] = RawRecord(base / name, [], [], path)
                coords = [(row[c] or "").strip() for c in CSV_COLUMNS[1:5]]
                label = (row["label"] or "").strip()
                if not any(coords) and not label:
                    continue
                if not all(coords) or not label:
                    raise UserError(f"{where}: a box needs all of xmin, ymin, xmax, ymax and label (all empty: no objects)")
                raws[name].boxes.append([number(v, where, c) for v, c in zip(coords, CSV_COLUMNS[1:5])])
                raws[name].names.append(label)
    except (csv.Error, UnicodeDecodeError, OSError) as exc:
        raise UserError(f"{path}: not a readable CSV ({one_line(exc)[:80]})") from exc
    for raw in raws.values():
        if not raw.path.is_file():
            raise UserError(f"{path}: names a missing image {raw.path}")
    return list(raws.values())


def csv_source(files: dict[str, Path], root: Path, data_root: str | None, val_split: float, seed: int) -> DetectionSource:
    base = Path(data_root).expanduser() if data_root else None
    split_raws = {s: csv_raws(p, base or p.parent) for s, p in files.items()}
    return assemble(root, split_raws, None, val_split, seed)


def folder_source(root: Path, val_split: float, seed: int) -> DetectionSource:
    if (root / "train").is_dir() and (root / "val").is_dir():
        parts = {s: xml_folder(root / s) for s in ("train", "val")}
        split_raws = {s: p[0] for s, p in parts.items()}
        skipped = [f for p in parts.values() for f in p[1]]
    else:
        raws, skipped = xml_folder(root)
        split_raws = {"all": raws}
    return assemble(root, split_raws, None, val_split, seed, skipped)


# -- the built-in digits -----------------------------------------------------------------------------------------------
DIGIT_CANVAS = BOX_CANVAS  # the side of a digits image in pixels


def digits_source(seed: int) -> DetectionSource:
    reader = DigitCanvases(seed)
    splits = {s: DetectionImages(it, reader, [(BOX_CANVAS, BOX_CANVAS)] * len(it)) for s, it in digit_items().items()}
    return DetectionSource(list(DIGIT_CLASSES), splits, in_memory=True)


# -- resolving a data string -------------------------------------------------------------------------------------------
def resolve_detection_source(data: str, data_root: str | None = None, val_split: float = 0.2,
                             seed: int = 0) -> DetectionSource:
    """The source that ``data`` names (see the module docstring); one error line when it is none of them."""
    source = find_source(data, data_root, val_split, seed)
    if source.dropped:
        logger.warning("dropped %d boxes with zero area or outside their image (first: %s)", source.dropped,
                       source.first_dropped)
    if source.skipped:
        logger.warning("skipped %d images without a .xml annotation (first: %s)", len(source.skipped), source.skipped[0])
    return source


def find_source(data: str, data_root: str | None, val_split: float, seed: int) -> DetectionSource:
    if data == "digits":
        return digits_source(seed)
    path = Path(data).expanduser()
    if path.is_file() and path.suffix.lower() == ".json":
        return coco_source({"all": path}, path.parent, val_split, seed)
    if path.is_file() and path.suffix.lower() == ".csv":
        return csv_source({"all": path}, path.parent, data_root, val_split, seed)
    if not path.is_dir():
        raise UserError(f"{data}: not found or not a detection dataset; expected {LAYOUTS}")
    coco = coco_split_files(path)
    if coco is not None:
        return coco_source(coco, path, val_split, seed)
    if (path / "train.csv").is_file() and (path / "val.csv").is_file():
        return csv_source({s: path / f"{s}.csv" for s in ("train", "val")}, path, data_root, val_split, seed)
    voc = find_voc_root(path)
    if voc is not None:
        root = path if (path / "classes.txt").is_file() else voc  # classes.txt at the data root or the VOC root
        return assemble(root, voc_root_raws(voc), None, val_split, seed)
    if any(path.glob("*.xml")) or any((path / "train").glob("*.xml")):
        return folder_source(path, val_split, seed)
    raise UserError(f"{path}: not a detection dataset; expected {LAYOUTS}")


def detection_default_split(data: str, data_root: str | None = None) -> str:
    """"val" when the data has a validation split (its own, the built-in one or a seeded one), else "all" (a folder
    with a single annotated image). Cheap: nothing is parsed."""
    path = Path(data).expanduser()
    if data != "digits" and path.is_dir() and not (path / "train").is_dir() and find_voc_root(path) is None \
            and coco_split_files(path) is None and len(list(path.glob("*.xml"))) == 1:
        return "all"
    return "val"
