"""The ONNX inference cases: the model exported (float32 and int8) once per
run, then timed through ``tools/test.py`` like the project's PyTorch case.

The export is ``tools/export.py``'s library call on the benchmark's photos:
int8 calibrated on its training JPEGs and checked against PyTorch float32
on its validation JPEGs (the agreement goes into the report; the benchmark
never refuses the model, it reports what it measured).
"""
import os.path as osp

from .photos import PROJECT_CONFIG
from .runner_case import case_cfg_options

MODEL_NAME = 'resnet50_flowers'
ONNX_VARIANTS = {'fp32': '.onnx', 'int8': '.int8.onnx'}


def onnx_model_file(export_dir: str, variant: str) -> str:
    return osp.join(export_dir, MODEL_NAME + ONNX_VARIANTS[variant])


def run_export_case(case: dict) -> dict:
    """Export the benchmark checkpoint to ONNX float32 and int8, with the
    options tools/export.py takes."""
    from mmengine.config import Config

    from flower_mm.cli import test as test_cli
    from flower_mm.deployment import export_classifier
    from flower_mm.utils import merge_cfg_options
    root, n = case['data_root'], case['num_images']
    # Validation photos for the agreement check: the benchmark's val JPEGs.
    options = case_cfg_options(case) + [
        f'val_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.indices={n}',
    ]
    # The options as the tools parse them (DictAction).
    args = test_cli.get_args_parser().parse_args(
        [PROJECT_CONFIG, case['checkpoint'], '--cfg-options', *options])
    described = export_classifier(
        merge_cfg_options(Config.fromfile(PROJECT_CONFIG), args.cfg_options),
        case['checkpoint'],
        ['onnx', 'onnx-int8'],
        case['export_dir'],
        name=MODEL_NAME,
        calib_images=case['calib_images'],
        verify_images=case['verify_images'],
        min_agreement=0.)
    return next(d['agreement'] for d in described if 'agreement' in d)
