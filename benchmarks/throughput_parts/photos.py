"""The benchmark's data: photo-like JPEGs and the project's model."""
import os
import os.path as osp

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PROJECT_CONFIG = osp.join(REPO_ROOT, 'configs', 'resnet50_flowers.py')
STOCK_CONFIG = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'
PHOTO_SIZE = (500, 375)  # width, height: a typical flower photo
UNIQUE_PHOTOS = 40  # distinct JPEGs; the rest are copies of them


def write_photos(root: str, num_train: int, num_val: int, seed=0) -> None:
    """``root/{train,val}/<class>/*.jpg``: 500x375 photo-like JPEGs."""
    import cv2
    import numpy as np

    from flower_mm.datasets import FLOWER_CLASSES
    rng = np.random.default_rng(seed)
    w, h = PHOTO_SIZE
    pool = []
    for _ in range(UNIQUE_PHOTOS):
        # Smooth shapes plus sensor noise: JPEG sizes (~60-90 kB) and decode
        # times like real photos, unlike flat or pure-noise images.
        coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        for _ in range(12):
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.circle(img, centre, int(rng.integers(10, 80)), colour, -1)
        img = cv2.GaussianBlur(img, (5, 5), 0)
        img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255)
        pool.append(cv2.imencode('.jpg', img.astype(np.uint8),
                                 [cv2.IMWRITE_JPEG_QUALITY, 92])[1])
    for split, count in (('train', num_train), ('val', num_val)):
        for i in range(count):
            cls = FLOWER_CLASSES[i % len(FLOWER_CLASSES)]
            folder = osp.join(root, split, cls)
            os.makedirs(folder, exist_ok=True)
            pool[i % UNIQUE_PHOTOS].tofile(
                osp.join(folder, f'{i // len(FLOWER_CLASSES):05d}.jpg'))


def write_checkpoint(path: str) -> None:
    """Weights of the project's model in MMPretrain's checkpoint format."""
    import torch
    model = build_project_model()
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)


def build_project_model():
    """The project's ImageClassifier, from its config, without init_cfg."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import flower_mm.registration  # noqa: F401
    cfg = Config.fromfile(PROJECT_CONFIG)
    init_default_scope('mmpretrain')
    cfg.model.backbone.pop('init_cfg', None)
    torch.manual_seed(0)
    return MODELS.build(cfg.model)
