"""What points a case at the benchmark's data and exports (a leaf: the
case runners import it, it imports none of them)."""
import os.path as osp

EXPORT_NAME = 'resnet50_flowers'
# --format of tools/export.py -> the file it writes.
EXPORT_FILES = {
    'onnx': '.onnx',
    'onnx-int8': '.int8.onnx',
    'openvino': '.xml',
    'openvino-int8': '.int8.xml',
}


def export_file(export_dir: str, fmt: str) -> str:
    return osp.join(export_dir, EXPORT_NAME + EXPORT_FILES[fmt])


def total_iters(case: dict) -> int:
    batches = -(-case['num_images'] // case['batch_size'])
    return batches * case.get('epochs', 1)


def case_cfg_options(case: dict) -> list:
    """--cfg-options pointing a config at the benchmark data."""
    root, n = case['data_root'], case['num_images']
    bs = case['batch_size']
    opts = [
        f'train_dataloader.dataset.data_root={root}',
        f'train_dataloader.dataset.indices={n}',
        f'train_dataloader.batch_size={bs}',
        f'test_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.indices={n}',
        f'test_dataloader.batch_size={bs}',
        f'model.backbone.init_cfg.checkpoint={case["checkpoint"]}',
        f'train_cfg.max_epochs={case.get("epochs", 1)}',
        # Saving happens after the measured iterations; skip its time.
        'default_hooks.checkpoint=None',
    ]
    if case.get('val_images'):  # a whole run, validation included
        opts += [f'val_dataloader.dataset.data_root={root}',
                 f'val_dataloader.dataset.indices={case["val_images"]}']
    return opts + case.get('extra_options', [])
