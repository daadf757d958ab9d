# Settings every flower experiment shares, on top of MMPretrain's ImageNet
# ResNet-50 recipe (model, data settings, SGD schedule, default runtime).
# Leaf configs (resnet50_flowers.py and its variants) set the backbone.
_base_ = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'

custom_imports = dict(imports=['flower_mm'], allow_failed_imports=False)

# model: 5 classes; top-5 of 5 classes is always 100 %, so report top-1.
model = dict(head=dict(num_classes=5, topk=(1, )))

# data
dataset_type = 'FlowerDataset'
data_root = 'data/flower_dataset'
data_preprocessor = dict(num_classes=5)  # ImageNet mean/std, BGR->RGB

train_pipeline = [
    # A photo that breaks during a run is skipped for another sample and
    # counted in the epoch's log (BrokenImageHook); test raises instead.
    dict(type='RobustLoadImageFromFile', ignore_empty=True),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    # MMPretrain's ColorJitter on lookup tables: 10x faster than its
    # Pillow default, the main cost of this pipeline (docs/speed.md).
    dict(
        type='FastColorJitter',
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
        hue=0.1),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='RobustLoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

# Data loading keeps up with the model (measurements in docs/speed.md).
# Workers: every core this process may use but one, 2 to 16. A training
# pipeline takes ~6 ms of CPU per photo, so a GPU consuming 2000+ images/s
# needs a dozen workers, while 2 suffice on a 2-core CPU. Under torchrun
# the cores are shared by the LOCAL_WORLD_SIZE processes of a machine.
# (`import os` must stay below `_base_`: MMEngine reads configs that import
# before declaring their base as new-style "lazy import" configs.)
import os  # noqa: E402

# Cores of this process (its affinity mask, which Slurm or taskset may
# narrow), shared by the processes torchrun starts on the machine.
cpu_cores = (len(os.sched_getaffinity(0)) if hasattr(
    os, 'sched_getaffinity') else os.cpu_count()) // int(
        os.environ.get('LOCAL_WORLD_SIZE', 1))
num_data_workers = max(2, min(16, cpu_cores - 1))
# Persistent workers skip restarting every worker at each epoch (seconds on
# the short flower epochs); batches are stacked in the workers
# (default_collate) so the model side receives one tensor.
train_dataloader = dict(
    batch_size=32,
    num_workers=num_data_workers,
    persistent_workers=True,
    prefetch_factor=2,
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        data_prefix='train',
        # An empty or missing data_root is filled on first use: download,
        # verify, 8:2 split (prepare='auto', docs/data_preparation.md).
        pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=num_data_workers,
    persistent_workers=True,
    prefetch_factor=2,
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        data_prefix='val',
        pipeline=test_pipeline),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
# Testing also explains the errors: per-class precision/recall/F1/support
# and the confusion matrix, which ClassificationReportHook turns into a
# table, classification_report.json and confusion_matrix.png.
test_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(
        type='SingleLabelMetric',
        items=('precision', 'recall', 'f1-score', 'support'),
        average=None),
    dict(type='ConfusionMatrix'),
]

# schedule: fine-tuning needs a 10x smaller learning rate than ImageNet
# training from scratch; lr 0.01 is for a total batch size of 32.
# Mixed precision wherever it is fast (docs/speed.md): fp16 autocast with
# dynamic loss scaling on a GPU, bf16 autocast on a CPU with native bf16
# (AVX512-BF16 or AMX), fp32 elsewhere. Plain fp32 everywhere: --cfg-options
# optim_wrapper.dtype=float32 val_cfg.fp16=False test_cfg.fp16=False
optim_wrapper = dict(
    type='DeviceAmpOptimWrapper',
    dtype='auto',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[10, 20], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=1)
val_cfg = dict(type='AmpValLoop', fp16='auto')
test_cfg = dict(type='AmpTestLoop', fp16='auto')
auto_scale_lr = dict(base_batch_size=32)

# runtime
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
# MMEngine's Runner that also runs data-parallel without GPUs, with gloo
# instead of env_cfg.dist_cfg.backend='nccl' (docs/distributed.md). Scoped:
# the tools look it up before the Runner sets the default scope.
runner_type = 'mmpretrain.FlowerRunner'
