"""Image loading that turns whatever a photo file holds into 3-channel BGR."""
import io
import logging
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine.fileio import get as read_bytes
from mmengine.logging import print_log
from PIL import Image, ImageOps
from mmpretrain.registry import TRANSFORMS


class ImageDecodeError(RuntimeError):
    """An image file could not be decoded."""


@TRANSFORMS.register_module()
class RobustLoadImageFromFile(LoadImageFromFile):
    """Load an image as a 3-channel uint8 BGR array, whatever the file holds.

    OpenCV decodes the common cases fast and already normalises them:
    grayscale, palette and 16-bit PNGs, CMYK JPEGs, and EXIF orientation.
    Files OpenCV cannot read go through Pillow. A file neither can decode
    raises :class:`ImageDecodeError` naming it, instead of mmcv's bare
    ``None`` or a crash later in the pipeline.

    With mmcv's ``ignore_empty=True`` (the flower training pipeline), a
    missing or undecodable file returns None instead, with a warning naming
    it, so MMEngine's dataset draws another sample: a photo deleted or
    replaced during a run does not stop training. Evaluation keeps raising,
    since a dropped sample would change the accuracy's denominator.

    Results that already hold a decoded ``img`` and no ``img_path`` pass
    through: MMPretrain's ``ImageClassificationInferencer`` decodes images
    itself and only strips transforms named ``LoadImageFromFile``.

    Required keys: ``img_path`` (or ``img``). Added keys: ``img``,
    ``img_shape``, ``ori_shape``.
    """

    def transform(self, results: dict) -> Optional[dict]:
        if 'img_path' not in results and results.get('img') is not None:
            img = results['img']
            results.setdefault('img_shape', img.shape[:2])
            results.setdefault('ori_shape', img.shape[:2])
            return results
        path = results['img_path']
        try:
            img = self._read(path)
        except (FileNotFoundError, ImageDecodeError) as err:
            if not self.ignore_empty:
                raise
            print_log(
                f'{err} Skipped it for another sample (ignore_empty=True).',
                logger='current',
                level=logging.WARNING)
            return None
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def _read(self, path: str) -> np.ndarray:
        try:
            data = read_bytes(path, backend_args=self.backend_args)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f'Image file "{path}" does not exist: {err}. Re-run the data '
                'preparation or remove it from the annotation file.') from err
        return decode_to_bgr(data, path)


def decode_to_bgr(data: bytes, path: str = '<bytes>') -> np.ndarray:
    """Decode image bytes to a contiguous HxWx3 uint8 BGR array."""
    if not data:
        raise ImageDecodeError(f'Image file "{path}" is empty (0 bytes).')
    img = None
    try:
        img = mmcv.imfrombytes(data, flag='color', backend='cv2')
    except Exception:  # OpenCV raises on some malformed files; try Pillow.
        img = None
    if img is None:
        try:
            img = _pillow_to_bgr(data)
        except Exception as err:
            raise ImageDecodeError(
                f'Cannot decode image file "{path}" ({len(data)} bytes): '
                f'{err}. Replace or remove the file; '
                '`python tools/prepare_flowers.py` lists such files.'
            ) from err
    return img


def _pillow_to_bgr(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as pil:
        pil = ImageOps.exif_transpose(pil)
        if pil.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
            # 16/32-bit grayscale: keep the high byte, as OpenCV does.
            arr = np.asarray(pil, dtype=np.uint32) >> (
                8 if pil.mode.startswith('I;16') else 24)
            pil = Image.fromarray(arr.astype(np.uint8), mode='L')
        if pil.mode in ('RGBA', 'LA', 'PA') or (
                pil.mode == 'P' and 'transparency' in pil.info):
            rgba = pil.convert('RGBA')
            pil = Image.new('RGB', rgba.size, (255, 255, 255))
            pil.paste(rgba, mask=rgba.getchannel('A'))
        rgb = np.asarray(pil.convert('RGB'))
    return np.ascontiguousarray(rgb[..., ::-1])
