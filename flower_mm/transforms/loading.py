"""Image loading that turns whatever a photo file holds into 3-channel BGR."""
import logging
from typing import Optional

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine.fileio import get as read_bytes
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS

# The decoding policy lives with the data (the pre-training check and
# preparation use it too); re-exported here, where the loader is.
from ..datasets.decoding import ImageDecodeError, decode_to_bgr

__all__ = ['ImageDecodeError', 'RobustLoadImageFromFile', 'decode_to_bgr']


@TRANSFORMS.register_module()
class RobustLoadImageFromFile(LoadImageFromFile):
    """Load an image as a 3-channel uint8 BGR array, whatever the file holds.

    Decodes by flower-mm's one policy (:mod:`flower_mm.datasets.decoding`):
    grayscale, palette, transparent and 16-bit PNGs, CMYK and EXIF-rotated
    JPEGs all become upright BGR; a file the pre-training check refuses
    (cut, damaged, empty, no image) raises :class:`ImageDecodeError` naming
    it and saying why, instead of mmcv's bare ``None`` or a crash later in
    the pipeline.

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

