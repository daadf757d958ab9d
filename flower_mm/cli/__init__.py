"""The command lines of ``tools/train.py`` and ``tools/test.py``: their
arguments and how they merge into a config (the command line wins), as
MMPretrain's tools have them, importable by the benchmarks and the tests.
The tools themselves only parse, merge and run.
"""


def build_runner(cfg):
    """The Runner a config asks for (``runner_type``, e.g. FlowerRunner),
    else MMEngine's, as MMPretrain's tools build it."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
