"""Find the class folders and keep the images training can read."""
import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from ..categories import FLOWER_CLASSES, IMG_EXTENSIONS, normalise_class_name
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
    suffix = '/' if path.is_dir() else ''
    ignored.append({'path': path.relative_to(root).as_posix() + suffix,
                    'reason': reason})


def _class_dirs(root: Path, ignored: List) -> Dict[str, Path]:
    """The class folders: in ``root`` or under a chain of single folders."""
    folder, outside = root, []
    for _ in range(4):
        dirs, files = [], []
        for entry in sorted(os.scandir(folder),
                            key=lambda e: os.fsencode(e.name)):
            path, reason = Path(entry.path), ignored_reason(entry.name)
            if reason:
                _ignore(ignored, path, root, reason)
            else:
                (dirs if entry.is_dir() else files).append(path)
        outside += files
        if len(dirs) != 1 or normalise_class_name(dirs[0].name):
            break
        folder = dirs[0]
    for f in outside:
        _ignore(ignored, f, root, 'not inside a class folder')
    expected = (f'one folder per class: {", ".join(FLOWER_CLASSES)} (plural '
                'names such as "roses" are accepted; found: '
                f'{", ".join(d.name for d in dirs) or "no folders"})')
    classes = {d: normalise_class_name(d.name) for d in dirs}
    unknown = ', '.join(f'"{d.name}"' for d, c in classes.items() if not c)
    if not any(classes.values()):
        raise PreparationError(f'no class folders found in {folder}; '
                               f'expected {expected}')
    if unknown:
        raise PreparationError(
            f'unknown class folder(s) {unknown} in {folder}; expected only '
            f'{expected}. Move or rename the extra folders')
    class_dirs: Dict[str, Path] = {}
    for d, cls in classes.items():
        if cls in class_dirs:
            raise PreparationError(
                f'folders "{class_dirs[cls].name}" and "{d.name}" in {folder} '
                f'are both class "{cls}"; merge them into one')
        class_dirs[cls] = d
    missing = ', '.join(f'"{c}"' for c in FLOWER_CLASSES
                        if c not in class_dirs)
    if missing:
        raise PreparationError(f'missing class folder(s) {missing} in '
                               f'{folder}; all are needed: {expected}')
    return class_dirs


def scan(root: Path, ignored: List) -> List[Image]:
    """Every file under the class folders, in a stable order."""
    images = []
    for cls, class_dir in _class_dirs(root, ignored).items():
        for dirpath, dirnames, filenames in os.walk(class_dir):
            here = Path(dirpath)
            for name in sorted(dirnames):
                reason = ignored_reason(name) or (
                    'symbolic link to a folder (not followed)'
                    if (here / name).is_symlink() else None)
                if reason:
                    dirnames.remove(name)
                    _ignore(ignored, here / name, root, reason)
            for name in filenames:
                reason = ignored_reason(name)
                if reason:
                    _ignore(ignored, here / name, root, reason)
                else:
                    rel = (here / name).relative_to(root).as_posix()
                    images.append(Image(cls, here / name, rel))
    images.sort(key=lambda i: (FLOWER_CLASSES.index(i.cls),
                               os.fsencode(i.relpath)))
    return images


def _check(image: Image) -> Image:
    """Fill in the hashes, or the reason the file is not usable."""
    import cv2
    import numpy as np
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError
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
    if not data:
        image.reason = 'empty file (0 bytes)'
        return image
    image.sha256 = hashlib.sha256(data).hexdigest()
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            img.load()  # a full decode, not a header peek
            rgb = img.convert('RGB')
    except UnidentifiedImageError:
        image.reason = 'not a decodable image: unknown or damaged format'
        return image
    except Exception as e:  # PIL raises OSError, ValueError, SyntaxError...
        kind = 'truncated image' if 'truncated' in str(e).lower() else \
            'corrupt image data'
        image.reason = f'{kind}: {e}'
        return image
    h = hashlib.sha256(f'{rgb.width}x{rgb.height}:'.encode())
    h.update(rgb.tobytes())
    image.pixel_sha256 = h.hexdigest()
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None or decoded.size == 0:
        image.reason = ('not decodable by OpenCV, which the training '
                        'pipeline reads images with')
    return image


def verify(images: List[Image], workers: int, progress_bar: bool):
    """(kept images, rejections): undecodable files and duplicates out."""
    from PIL import ImageFile
    strict, ImageFile.LOAD_TRUNCATED_IMAGES = \
        ImageFile.LOAD_TRUNCATED_IMAGES, False
    kept, rejected, first = [], [], {}
    try:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for image in progress(pool.map(_check, images), progress_bar,
                                  'Verifying images', len(images)):
                for key, same in ((image.sha256, 'identical bytes'),
                                  (image.pixel_sha256, 'identical pixels')):
                    if not image.reason and key in first:
                        image.reason = f'duplicate of {first[key]} ({same})'
                if image.reason:
                    rejected.append({'path': image.relpath,
                                     'reason': image.reason,
                                     'class': image.cls})
                    continue
                first.setdefault(image.sha256, image.relpath)
                first.setdefault(image.pixel_sha256, image.relpath)
                kept.append(image)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = strict
    return kept, rejected
