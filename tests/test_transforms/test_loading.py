import io

import numpy as np
import pytest
from PIL import Image

from flower_mm.transforms import ImageDecodeError, RobustLoadImageFromFile

RED_RGB = (200, 30, 40)


def load(path):
    return RobustLoadImageFromFile().transform({'img_path': str(path)})


def rgb_image(size=(30, 20)):
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[:] = RED_RGB
    arr[:4] = (0, 0, 0)  # a black band at the top shows the orientation
    return Image.fromarray(arr)


def assert_bgr(img, shape=(20, 30)):
    assert img.dtype == np.uint8
    assert img.shape == (*shape, 3)
    assert img.flags['C_CONTIGUOUS']


@pytest.mark.parametrize('mode', ['L', 'RGBA', 'P', 'CMYK'])
def test_any_colour_mode_gives_three_channel_bgr(tmp_path, mode):
    ext = 'jpg' if mode == 'CMYK' else 'png'
    path = tmp_path / f'img_{mode}.{ext}'
    rgb_image().convert(mode).save(path)
    results = load(path)
    img = results['img']
    assert_bgr(img)
    assert results['img_shape'] == results['ori_shape'] == (20, 30)
    centre = img[12, 15].astype(int)
    if mode == 'L':
        assert centre[0] == centre[1] == centre[2]
    else:
        # Palette mode quantises to the web palette (steps of 51).
        tolerance = 26 if mode == 'P' else 12
        assert np.abs(centre - RED_RGB[::-1]).max() <= tolerance, centre


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path):
    arr = np.full((20, 30), 51400, np.uint16)  # 0xC8C8 -> high byte 200
    path = tmp_path / 'deep.png'
    Image.fromarray(arr).save(path)
    img = load(path)['img']
    assert_bgr(img)
    assert (img == 200).all()


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / 'rotated.jpg'
    rgb_image().save(path, exif=exif, quality=95)
    img = load(path)['img']
    assert_bgr(img, shape=(30, 20))
    # The black band at the top of the stored image is on the right now.
    assert img[:, -2].mean() < 20 and img[:, 2].mean() > 50


@pytest.mark.parametrize('payload,reason', [
    (b'', 'cannot be decoded: empty file (0 bytes)'),
    (b'this is not an image',
     "cannot be decoded: not an image (20 bytes starting with b'this is '"),
])
def test_undecodable_files_name_the_file(tmp_path, payload, reason):
    path = tmp_path / 'broken.jpg'
    path.write_bytes(payload)
    with pytest.raises(ImageDecodeError) as err:
        load(path)
    assert str(path) in str(err.value) and reason in str(err.value)


def test_truncated_jpeg_names_the_file(tmp_path):
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    Image.fromarray(noise).save(buf, 'JPEG')
    path = tmp_path / 'truncated.jpg'
    path.write_bytes(buf.getvalue()[:400])
    with pytest.raises(ImageDecodeError, match='truncated.jpg'):
        load(path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='gone.jpg'):
        load(tmp_path / 'gone.jpg')


def test_to_float32(tmp_path):
    path = tmp_path / 'img.png'
    rgb_image().save(path)
    img = RobustLoadImageFromFile(to_float32=True).transform(
        {'img_path': str(path)})['img']
    assert img.dtype == np.float32
