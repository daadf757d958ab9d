from .color_jitter import FastColorJitter
from .loading import ImageDecodeError, RobustLoadImageFromFile, decode_to_bgr

__all__ = [
    'FastColorJitter', 'ImageDecodeError', 'RobustLoadImageFromFile',
    'decode_to_bgr'
]
