"""One decoding policy: every kind of image file of docs/robustness.md gets
the same verdict, in the same words, from the training loader, the check
before training and the data preparation."""
import io

import cv2
import numpy as np
import pytest
from conftest import PREPARE_QUIET, random_jpeg
from PIL import Image

from flower_mm.datasets import FLOWER_CLASSES, check_image_file
from flower_mm.datasets.decoding import (ImageDecodeError, decode_to_bgr,
                                         why_unreadable)
from flower_mm.datasets.preparation import prepare_flowers
from flower_mm.transforms import RobustLoadImageFromFile


def picture(seed: int, mode: str = 'RGB', size=(40, 30)) -> Image.Image:
    """Smooth colours (a photo compresses like this) of a seeded tint."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]]
    rgb = np.stack([x * 6, y * 8, (x + y) * 3], -1) + rng.integers(0, 60, 3)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).convert(
        mode)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def exif_rotated_jpeg(seed: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    return encode(picture(seed), 'JPEG', exif=exif)


def sixteen_bit_png(seed: int) -> bytes:
    grey = np.asarray(picture(seed, 'L')).astype(np.uint16) * 257
    return encode(Image.fromarray(grey), 'PNG')


def pam(seed: int) -> bytes:
    """A PAM (P7) file: OpenCV reads it, Pillow does not know the format."""
    bgr = np.asarray(picture(seed))[..., ::-1]
    return cv2.imencode('.pam', np.ascontiguousarray(bgr))[1].tobytes()


def garbled_jpeg(seed: int) -> bytes:
    """Intact headers, garbage scan data: OpenCV would decode it to noise,
    with a warning."""
    data = bytearray(random_jpeg(seed))
    sos = data.index(b'\xff\xda')
    rng = np.random.RandomState(seed)
    data[sos + 20:-2] = rng.randint(0, 256, len(data) - sos - 22,
                                    np.uint8).tobytes()
    return bytes(data)


# name in the daisy folder -> (its bytes, the reason; None: readable)
KINDS = {
    'rgb.jpg': (lambda: encode(picture(1), 'JPEG'), None),
    'grey.png': (lambda: encode(picture(2, 'L'), 'PNG'), None),
    'rgba.png': (lambda: encode(picture(3, 'RGBA'), 'PNG'), None),
    'palette.png': (lambda: encode(picture(4, 'P'), 'PNG'), None),
    'cmyk.jpg': (lambda: encode(picture(5, 'CMYK'), 'JPEG'), None),
    'exif_rotated.jpg': (lambda: exif_rotated_jpeg(6), None),
    'sixteen_bit.png': (lambda: sixteen_bit_png(7), None),
    'opencv_only.pgm': (lambda: pam(8), None),
    'bitmap.bmp': (lambda: encode(picture(9), 'BMP'), None),
    'notes.jpg': (lambda: b'a text file, not a photo',
                  "not an image (24 bytes starting with b'a text f')"),
    'empty.jpg': (lambda: b'', 'empty file (0 bytes)'),
    'cut.jpg': (lambda: random_jpeg(10)[:400],
                'truncated image: the data ends after 400 bytes'),
    'cut.png': (lambda: encode(Image.open(io.BytesIO(random_jpeg(11))),
                               'PNG')[:1000],
                'truncated image: the data ends after 1000 bytes'),
    'garbled.jpg': (lambda: garbled_jpeg(12), 'corrupt image data: '),
}


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    """Raw photos, one folder per class: every kind in daisy/, one good
    photo in each other class."""
    root = tmp_path_factory.mktemp('decoding') / 'photos'
    for label, cls in enumerate(FLOWER_CLASSES):
        (root / cls).mkdir(parents=True)
        (root / cls / 'good.jpg').write_bytes(random_jpeg(100 + label))
    for name, (make, _) in KINDS.items():
        (root / 'daisy' / name).write_bytes(make())
    return root


def loader_reason(path) -> str:
    try:
        results = RobustLoadImageFromFile().transform({'img_path': str(path)})
    except ImageDecodeError as err:
        assert str(path) in str(err)
        return err.reason
    img = results['img']
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    return None


def test_loader_check_and_preparation_agree_on_every_kind(source, tmp_path):
    prepared = prepare_flowers(source, tmp_path / 'split', **PREPARE_QUIET)
    rejected = {r['path']: r['reason'] for r in prepared.rejected}
    for name, (_, expected) in KINDS.items():
        path = source / 'daisy' / name
        verdicts = {
            'loader': loader_reason(path),
            'check': check_image_file(str(path)),
            'preparation': rejected.get(f'daisy/{name}'),
        }
        assert len(set(verdicts.values())) == 1, (name, verdicts)
        if expected is None:
            assert verdicts['check'] is None, (name, verdicts)
        else:
            assert (verdicts['check'] or '').startswith(expected), (name,
                                                                    verdicts)
    assert prepared.counts['train']['daisy'] + prepared.counts['val'][
        'daisy'] == 1 + sum(e is None for _, e in KINDS.values())


def test_pixels_are_upright_bgr_on_white_and_eight_bits(source):
    """What the readable kinds decode to (the loader's pixels)."""
    def pixels(name):
        return decode_to_bgr((source / 'daisy' / name).read_bytes(), name)

    rgb = np.asarray(picture(1))
    assert np.abs(pixels('rgb.jpg').astype(int) -
                  rgb[..., ::-1]).mean() < 3  # JPEG's loss
    assert pixels('exif_rotated.jpg').shape == (40, 30, 3)  # upright
    rgba = picture(3, 'RGBA')
    rgba.putalpha(0)
    transparent = decode_to_bgr(encode(rgba, 'PNG'), 'clear.png')
    assert (transparent == 255).all()  # on white
    grey = np.asarray(picture(7, 'L'))
    assert (pixels('sixteen_bit.png') == grey[..., None]).all()
    assert (pixels('opencv_only.pgm') == np.asarray(
        picture(8))[..., ::-1]).all()


def test_the_check_decodes_less_with_the_same_verdict(source):
    """``why_unreadable`` (JPEGs at 1/8 scale) is what ``decode_to_bgr``
    says, on every kind."""
    for name in KINDS:
        data = (source / 'daisy' / name).read_bytes()
        try:
            decode_to_bgr(data, name)
            full = None
        except ImageDecodeError as err:
            full = err.reason
        assert why_unreadable(data) == full, name
