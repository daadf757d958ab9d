# Hooks, speed and crash safety on MMPretrain's default runtime.
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(
    imports=['flower_mm.registration'], allow_failed_imports=False)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    # crash-safe: atomic saves; --resume skips incomplete checkpoints
    checkpoint=dict(
        type='AtomicCheckpointHook',
        interval=1,
        max_keep_ckpts=3,
        save_best='accuracy/top1',
        rule='greater'),
    # augmentation and main-process RNGs seeded from (seed, epoch[, sample]),
    # so --resume replays the uninterrupted run (docs/crash_safety.md)
    resumable_randomness=dict(type='ResumableRandomnessHook'),
    # NHWC weights and inputs: faster convolutions on CPUs and GPUs alike.
    # Off: --cfg-options default_hooks.channels_last.enabled=False
    channels_last=dict(type='ChannelsLastHook'),
    # glibc keeps freed tensor memory instead of page-faulting activations
    # in again every iteration (up to 10 % of a CPU iteration).
    malloc_tuning=dict(type='MallocTuningHook'),
    # which val photos each epoch got right: the sweep's paired comparisons
    val_predictions=dict(type='ValPredictionsHook'),
)
# Fixed 224 px inputs: let cuDNN pick the fastest convolution algorithms.
# OpenCV threads off in the main process, as in MMPretrain's runtime: the
# data workers already use every core.
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
custom_hooks = [
    dict(type='ConfigCheckHook'),
    dict(type='PretrainedWeightsCheckHook'),
    dict(type='ClassificationReportHook'),
    dict(type='BrokenImageHook'),
]
randomness = dict(seed=0, deterministic=False)
# torch.compile of the network's forward where it repays its compile time
# (FlowerRunner; docs/speed.md): tools/test.py on 3,000+ photos on CPUs with
# native bf16; training stays eager (a whole run was measured no faster).
# Off: --cfg-options compile=False; always: compile=True.
compile = 'auto'
# MMEngine's Runner that also runs data-parallel without GPUs, with gloo
# instead of env_cfg.dist_cfg.backend='nccl' (docs/distributed.md). Scoped:
# the tools look it up before the Runner sets the default scope.
runner_type = 'mmpretrain.FlowerRunner'
