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
    dict(type='RobustLoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(
        type='ColorJitter',
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

train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        data_prefix='train',
        # True downloads and splits the public archive into data_root on
        # first use (see docs/data_preparation.md).
        prepare=False,
        pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
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
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[10, 20], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=1)
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
)
custom_hooks = [
    dict(type='ConfigCheckHook'),
    dict(type='PretrainedWeightsCheckHook'),
    dict(type='ClassificationReportHook'),
]
randomness = dict(seed=0, deterministic=False)
# MMEngine's Runner that also runs data-parallel without GPUs, with gloo
# instead of env_cfg.dist_cfg.backend='nccl' (docs/distributed.md). Scoped:
# the tools look it up before the Runner sets the default scope.
runner_type = 'mmpretrain.FlowerRunner'
