"""Find the class folders and keep the images training can read."""
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from ..categories import FLOWER_CLASSES, IMG_EXTENSIONS, normalise_class_name
from ..decoding import ImageDecodeError, decode_to_bgr
from .common import PreparationError, ignored_reason, progress


@dataclass
class Image:
    cls: str
    path: Path
    relpath: str  # relative to the source root, POSIX
    sha256: str = ''
    pixel_sha256: str = ''
    reason: str = ''  # why it is rejected; '' when it is kept


def _ignore(ignored: List, path: Path, root: Path, reason: str) -> None:
    ignored.append({'reason': reason, 'path': path.relative_to(
        root).as_posix() + '/' * path.is_dir()})


def _class_dirs(root: Path, ignored: List) -> Dict[str, Path]:
    """The class folders: in ``root`` or under a chain of single folders."""
    folder = root
    for _ in range(4):
        dirs = []
        for entry in sorted(os.scandir(folder),
                            key=lambda e: os.fsencode(e.name)):
            path, reason = Path(entry.path), ignored_reason(entry.name)
            if reason or not entry.is_dir():
                _ignore(ignored, path, root,
                        reason or 'not inside a class folder')
            else:
                dirs.append(path)
        if len(dirs) != 1 or normalise_class_name(dirs[0].name):
            break
        folder = dirs[0]
    classes = {d: normalise_class_name(d.name) for d in dirs}
    class_dirs = {c: d for d, c in reversed(classes.items()) if c}
    unknown = [f'"{d.name}"' for d, c in classes.items() if not c]
    twice = [c for c in class_dirs if list(classes.values()).count(c) > 1]
    missing = [f'"{c}"' for c in FLOWER_CLASSES if c not in class_dirs]
    error = ('no class folders found' if not class_dirs else
             f'unknown class folder(s) {", ".join(unknown)}' if unknown else
             f'two folders are both class "{twice[0]}"' if twice else
             f'missing class folder(s) {", ".join(missing)}' if missing else
             None)
    if error:
        raise PreparationError(
            f'{error} in {folder}; expected one folder per class: '
            f'{", ".join(FLOWER_CLASSES)} (plural names such as "roses" are '
            'accepted; found: '
            f'{", ".join(d.name for d in dirs) or "no folders"})')
    return class_dirs


def scan(root: Path, ignored: List) -> List[Image]:
    """Every file under the class folders, in a stable order."""
    images = []
    for cls, class_dir in _class_dirs(root, ignored).items():
        for dirpath, dirnames, filenames in os.walk(class_dir):
            here = Path(dirpath)
            for name in sorted(dirnames) + filenames:
                path, reason = here / name, ignored_reason(name)
                if name in dirnames and not reason and path.is_symlink():
                    reason = 'symbolic link to a folder (not followed)'
                if reason:
                    _ignore(ignored, path, root, reason)
                    if name in dirnames:
                        dirnames.remove(name)
                elif name in filenames:
                    images.append(
                        Image(cls, path, path.relative_to(root).as_posix()))
    return sorted(images, key=lambda i: (FLOWER_CLASSES.index(
        i.cls), os.fsencode(i.relpath)))


def _check(image: Image) -> Image:
    """Fill in the hashes, or the reason the file is not usable."""
    ext = os.path.splitext(image.path.name)[1].lower()
    if ext not in IMG_EXTENSIONS:
        image.reason = (f'not an image file: extension "{ext or "(none)"}" '
                        f'is not one of {" ".join(IMG_EXTENSIONS)}')
        return image
    try:
        data = image.path.read_bytes()
    except OSError as e:
        image.reason = f'cannot be read: {e.strerror or e}'
        return image
    image.sha256 = hashlib.sha256(data).hexdigest()
    try:  # training's own decoding, in full
        pixels = decode_to_bgr(data, image.relpath)
    except ImageDecodeError as e:
        image.reason = e.reason
        return image
    h = hashlib.sha256('{}x{}:'.format(*pixels.shape[:2]).encode())
    h.update(pixels.tobytes())
    image.pixel_sha256 = h.hexdigest()
    return image


def verify(images: List[Image], workers: int, progress_bar: bool):
    """(kept images, rejections): undecodable files and duplicates out."""
    kept, rejected, first = [], [], {}
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for image in progress(pool.map(_check, images), progress_bar,
                              'Verifying images', len(images)):
            for key, same in ((image.sha256, 'identical bytes'),
                              (image.pixel_sha256, 'identical pixels')):
                if not image.reason and key in first:
                    image.reason = f'duplicate of {first[key]} ({same})'
            if image.reason:
                rejected.append({'path': image.relpath,
                                 'reason': image.reason, 'class': image.cls})
                continue
            first.setdefault(image.sha256, image.relpath)
            first.setdefault(image.pixel_sha256, image.relpath)
            kept.append(image)
    return kept, rejected
