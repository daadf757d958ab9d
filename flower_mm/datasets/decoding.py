"""What a readable image file is, and its pixels: the one decoding policy.

The training loader (``RobustLoadImageFromFile``), the check before
training (:mod:`.image_check`), data preparation and inference all ask
this module, so a photo that one of them accepts, every one accepts, and a
refusal reads the same everywhere.

The policy: a file is readable when it is not empty and Pillow decodes it
completely (a cut file is an error, not padded with grey, and so is
damaged compressed data, which OpenCV would decode to noise with a
warning); formats Pillow does not recognise at all are decoded by OpenCV.
Its pixels are 3-channel uint8 BGR, upright (EXIF orientation applied),
transparent areas on white, 16-bit images scaled to 8.

Torch-free: preparation imports it; numpy and OpenCV load on first use.
"""
import io
from typing import Optional

from PIL import Image, ImageOps, UnidentifiedImageError

from ..utils.machine import usable_cores

__all__ = [
    'ImageDecodeError', 'decode_to_bgr', 'decode_workers', 'why_unreadable'
]


class ImageDecodeError(RuntimeError):
    """An image file could not be decoded; ``reason`` says why in the words
    every part of flower-mm uses (:func:`why_unreadable`)."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason
        super().__init__(
            f'Image file "{name}" cannot be decoded: {reason}. Replace or '
            'remove it; `python tools/prepare_flowers.py` lists such files.')


def decode_workers() -> int:
    """Threads that decode images (check, preparation): every core this
    process may use, up to 8 (Pillow and OpenCV decode without the GIL)."""
    return max(1, min(8, usable_cores()))


def why_unreadable(data: bytes) -> Optional[str]:
    """Why ``data`` is no readable image, or None if it is one.

    Cheaper than :func:`decode_to_bgr` with the same verdict: JPEGs are
    decoded at 1/8 scale (libjpeg's DCT scaling still walks all of the
    compressed data, so a cut or damaged file still fails).
    """
    try:
        _decode(data, reduced=True)
    except ImageDecodeError as err:
        return err.reason
    return None


def decode_to_bgr(data: bytes, name: str = '<bytes>'):
    """Decode image bytes to a contiguous HxWx3 uint8 BGR array.

    Raises:
        ImageDecodeError: naming ``name``, with the reason.
    """
    try:
        image = _decode(data, reduced=False)
    except ImageDecodeError as err:
        raise ImageDecodeError(name, err.reason) from err.__cause__
    return image if not isinstance(image, Image.Image) else _to_bgr(image)


def _decode(data: bytes, reduced: bool):
    """A loaded Pillow image, or the BGR array OpenCV decoded where Pillow
    does not know the format; raises :class:`ImageDecodeError`."""
    if not data:
        raise ImageDecodeError('', 'empty file (0 bytes)')
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        decoded = _opencv_decode(data, reduced)
        if decoded is None:
            raise ImageDecodeError(
                '', f'not an image ({len(data)} bytes starting with '
                f'{data[:8]!r})') from None
        return decoded
    except Exception as err:  # a cut header, DecompressionBombError...
        raise _damaged(err, data) from err
    try:
        if reduced and image.format == 'JPEG':
            image.draft('RGB', (max(1, image.width // 8),
                                max(1, image.height // 8)))
        image.load()
    except Exception as err:  # Pillow raises OSError, ValueError, ...
        raise _damaged(err, data) from err
    return image


def _damaged(err: Exception, data: bytes) -> ImageDecodeError:
    if 'truncated' in str(err).lower():
        return ImageDecodeError(
            '', f'truncated image: the data ends after {len(data)} bytes')
    return ImageDecodeError('', f'corrupt image data: {err}')


def _opencv_decode(data: bytes, reduced: bool):
    import cv2
    import numpy as np
    flag = cv2.IMREAD_REDUCED_COLOR_8 if reduced else cv2.IMREAD_COLOR
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    return img if img is not None and img.size else None


def _to_bgr(image: Image.Image):
    import cv2
    import numpy as np
    ImageOps.exif_transpose(image, in_place=True)
    if image.mode in ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I', 'F'):
        # More than 8 bits (16-bit PNG, PGM, TIFF): keep the high byte of
        # 16, as OpenCV does; floats are taken as 0..255.
        values = np.asarray(image)
        if image.mode != 'F':
            values = values.astype(np.int64) >> 8
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
    if image.mode in ('RGBA', 'LA', 'PA', 'RGBa', 'La') or (
            image.mode == 'P' and 'transparency' in image.info):
        rgba = image.convert('RGBA')
        image = Image.new('RGB', rgba.size, (255, 255, 255))
        image.paste(rgba, mask=rgba.getchannel('A'))
    if image.mode == 'L':
        return cv2.cvtColor(np.asarray(image), cv2.COLOR_GRAY2BGR)
    rgb = np.asarray(image if image.mode == 'RGB' else image.convert('RGB'))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)

