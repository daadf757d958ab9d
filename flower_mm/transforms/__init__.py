from .loading import ImageDecodeError, RobustLoadImageFromFile, decode_to_bgr

__all__ = ['ImageDecodeError', 'RobustLoadImageFromFile', 'decode_to_bgr']
