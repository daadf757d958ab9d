"""The exports the runtime cases run: the benchmark's model exported once
per run by ``tools/export.py``'s library call (ONNX and OpenVINO, float32
and int8), then timed through ``tools/test.py`` like the project's PyTorch
case.

int8 is calibrated on the benchmark's training JPEGs and checked against
PyTorch float32 on its validation JPEGs (the agreements go into the
report; the benchmark never refuses a model, it reports what it measured).
"""
from .options import EXPORT_NAME, case_cfg_options
from .photos import PROJECT_CONFIG


def run_export_case(case: dict) -> dict:
    """Export the benchmark checkpoint in ``case['formats']``, with the
    options tools/export.py takes; the int8 formats' agreement checks."""
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
        case['formats'],
        case['export_dir'],
        name=EXPORT_NAME,
        calib_images=case['calib_images'],
        verify_images=case['verify_images'],
        min_agreement=0.)
    return {d['format']: d['agreement'] for d in described
            if 'agreement' in d}
