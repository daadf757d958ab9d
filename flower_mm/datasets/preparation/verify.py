"""Find the class folders and keep the images training can read."""
import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from ..categories import FLOWER_CLASSES, IMG_EXTENSIONS, normalise_class_name
from .common import PreparationError, ignored_reason, progress

Report = List[Dict[str, str]]


@dataclass
class Image:
    cls: str
    path: Path
    relpath: str  # relative to the source root, POSIX
    sha256: str = ''
    pixel_sha256: str = ''
    reason: str = ''  # why it is rejected; '' when it is kept


def _entries(folder: Path, root: Path, ignored: Report):
    dirs, files = [], []
    for entry in sorted(os.scandir(folder), key=lambda e: os.fsencode(e.name)):
        path = Path(entry.path)
        reason = ignored_reason(entry.name)
        if reason:
            suffix = '/' if entry.is_dir() else ''
            ignored.append({'path': path.relative_to(root).as_posix() + suffix,
                            'reason': reason})
        else:
            (dirs if entry.is_dir() else files).append(path)
    return dirs, files


def _class_dirs(root: Path, ignored: Report) -> Dict[str, Path]:
    """The class folders: in ``root`` or under a chain of single folders."""
    folder, outside = root, []
    for _ in range(4):
        dirs, files = _entries(folder, root, ignored)
        outside += files
        if any(normalise_class_name(d.name) for d in dirs) or len(dirs) != 1:
            break
        folder = dirs[0]
    ignored += [{'path': f.relative_to(root).as_posix(),
                 'reason': 'not inside a class folder'} for f in outside]
    expected = ', '.join(FLOWER_CLASSES)
    found = ', '.join(d.name for d in dirs) or 'no folders'
    plural = '(plural names such as "roses" are accepted)'
    if not any(normalise_class_name(d.name) for d in dirs):
        raise PreparationError(
            f'no class folders found in {folder} (found: {found}); expected '
            f'one folder per class: {expected} {plural}')
    unknown = [f'"{d.name}"' for d in dirs if not normalise_class_name(d.name)]
    if unknown:
        raise PreparationError(
            f'unknown class folder(s) {", ".join(unknown)} in {folder}; '
            f'expected only {expected} {plural}. Found: {found}. Move or '
            'rename the extra folders')
    class_dirs: Dict[str, Path] = {}
    for d in dirs:
        cls = normalise_class_name(d.name)
        if cls in class_dirs:
            raise PreparationError(
                f'folders "{class_dirs[cls].name}" and "{d.name}" in {folder} '
                f'are both class "{cls}"; merge them into one')
        class_dirs[cls] = d
    missing = [f'"{c}"' for c in FLOWER_CLASSES if c not in class_dirs]
    if missing:
        raise PreparationError(
            f'missing class folder(s) {", ".join(missing)} in {folder} '
            f'(found: {found}); all of {expected} are needed')
    return class_dirs


def scan(root: Path, ignored: Report) -> List[Image]:
    """Every file under the class folders, in a stable order."""
    class_dirs = _class_dirs(root, ignored)
    images = []
    for cls in FLOWER_CLASSES:
        for dirpath, dirnames, filenames in os.walk(class_dirs[cls]):
            here = Path(dirpath)
            for name in sorted(dirnames):
                reason = ignored_reason(name) or (
                    'symbolic link to a folder (not followed)'
                    if (here / name).is_symlink() else None)
                if reason:
                    dirnames.remove(name)
                    rel = (here / name).relative_to(root).as_posix()
                    ignored.append({'path': rel + '/', 'reason': reason})
            for name in filenames:
                rel = (here / name).relative_to(root).as_posix()
                reason = ignored_reason(name)
                if reason:
                    ignored.append({'path': rel, 'reason': reason})
                else:
                    images.append(Image(cls, here / name, rel))
    images.sort(key=lambda i: (FLOWER_CLASSES.index(i.cls),
                               os.fsencode(i.relpath)))
    return images


def _check(image: Image) -> Image:
    """Fill in the hashes, or the reason the file is not usable."""
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
    import cv2
    import numpy as np
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None or decoded.size == 0:
        image.reason = ('not decodable by OpenCV, which the training '
                        'pipeline reads images with')
    return image


@contextmanager
def _strict_pil():
    from PIL import ImageFile
    old, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, \
        False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = old


def verify(images: List[Image], workers: int,
           progress_bar: bool) -> Tuple[List[Image], Report]:
    """(kept images, rejections): undecodable files and duplicates out."""
    kept, rejected, first = [], [], {}
    with _strict_pil(), ThreadPoolExecutor(max(1, workers)) as pool, \
            progress(progress_bar, 'Verifying images', len(images)) as bar:
        for image in pool.map(_check, images):
            bar.advance()
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
