# The 5-class flower photos on MMPretrain's ImageNet data settings
# (mean/std normalisation, sampler): flowers' own dataset, pipelines,
# loaders and metrics replace ImageNet's.
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs32.py'

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
# num_workers='auto': every core this process may use but one, 2 to 16,
# shared by the processes torchrun starts on a machine; FlowerRunner
# resolves it when it builds the loader, so the config is the same on every
# machine. Persistent workers skip restarting every worker at each epoch
# (seconds on the short flower epochs); batches are stacked in the workers
# (default_collate) so the model side receives one tensor.
# Shared by both loaders. (A "__" name is not a config key: MMEngine leaves
# it out.) _delete_: ImageNet's dataset keys must not carry over.
__loader = dict(
    batch_size=32,
    num_workers='auto',
    persistent_workers=True,
    prefetch_factor=2,
    collate_fn=dict(type='default_collate'))
__dataset = dict(_delete_=True, type=dataset_type, data_root=data_root)
train_dataloader = dict(
    **__loader,
    dataset=dict(
        **__dataset,
        data_prefix='train',
        # An empty or missing data_root is filled on first use: download,
        # verify, 8:2 split (prepare='auto', docs/data_preparation.md).
        pipeline=train_pipeline))
val_dataloader = dict(
    **__loader,
    dataset=dict(**__dataset, data_prefix='val', pipeline=test_pipeline))
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
