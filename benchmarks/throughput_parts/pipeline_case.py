"""CPU time per image of each data pipeline, on one core."""
import os
import os.path as osp
import time

from .photos import PROJECT_CONFIG, STOCK_CONFIG


def read_jpeg(path: str):
    """The plain loop's decoder: libjpeg-turbo through torchvision."""
    from torchvision.io import decode_jpeg, read_file
    return decode_jpeg(read_file(path))


def plain_transform(train: bool):
    """The project's augmentations, as torchvision v2 transforms."""
    from torchvision.transforms import v2
    if train:
        return v2.Compose([
            v2.RandomResizedCrop(224, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.ColorJitter(0.4, 0.4, 0.4, 0.1),
        ])
    return v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(224)])


def run_pipeline_case(case: dict) -> dict:
    """CPU time per image of each data pipeline, on one core."""
    import cv2
    import torch
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import TRANSFORMS

    import flower_mm.registration  # noqa: F401
    cv2.setNumThreads(1)  # as in a data worker
    torch.set_num_threads(1)
    init_default_scope('mmpretrain')
    paths = sorted(
        osp.join(dp, f) for dp, _, fs in os.walk(
            osp.join(case['data_root'], 'train')) for f in fs)[:case['count']]
    project, stock = Config.fromfile(PROJECT_CONFIG), get_config(STOCK_CONFIG)

    def time_mm(pipeline_cfg, per_step=False):
        steps = [TRANSFORMS.build(t) for t in pipeline_cfg]
        spent = [0.] * len(steps)
        for n, path in enumerate(paths[:5] + paths):  # 5 to warm up
            results = dict(img_path=path, gt_label=0)
            for i, step in enumerate(steps):
                t0 = time.process_time()
                results = step(results)
                if n >= 5:
                    spent[i] += time.process_time() - t0
        ms = [1e3 * t / len(paths) for t in spent]
        if per_step:
            return {type(t).__name__: m for t, m in zip(steps, ms)}
        return sum(ms)

    def time_plain(train):
        transform = plain_transform(train)
        for path in paths[:5]:  # warm up
            transform(read_jpeg(path))
        t0 = time.process_time()
        for path in paths:
            transform(read_jpeg(path))
        return 1e3 * (time.process_time() - t0) / len(paths)

    return dict(
        ms_per_image={
            'train, stock': time_mm(stock.train_pipeline),
            'train, project': time_mm(project.train_pipeline),
            'train, plain (torchvision)': time_plain(True),
            'test, stock': time_mm(stock.test_pipeline),
            'test, project': time_mm(project.test_pipeline),
            'test, plain (torchvision)': time_plain(False),
        },
        project_train_steps=time_mm(project.train_pipeline, per_step=True),
        project_train_steps_pillow_jitter=time_mm(
            [dict(t, type='ColorJitter') if t['type'] == 'FastColorJitter'
             else t for t in project.train_pipeline], per_step=True),
        images=len(paths))
