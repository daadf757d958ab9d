# DenseNet-121 from MMPretrain's ImageNet weights (74.96 % top-1, converted
# from torchvision) in place of resnet50_flowers.py's ResNet-50, with the
# same flower settings: batch 32, lr 0.01, 30 epochs, and the first two of
# the four stages frozen (frozen_stages=2 freezes DenseNet's first two dense
# blocks with their transitions; unlike ResNet's, MMPretrain's DenseNet
# never freezes its stem, a 7x7 conv and a BN: 9.5k of 7M weights).
# MMPretrain's DenseNet-121 model under the flower parts, as
# resnet50_flowers.py puts them under its ResNet-50.
_base_ = [
    'mmpretrain::_base_/models/densenet/densenet121.py',
    './_base_/datasets/flowers.py', './_base_/schedules/flowers.py',
    './_base_/flowers_runtime.py'
]

model = dict(
    backbone=dict(
        frozen_stages=2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'densenet/densenet121_4xb256_in1k_20220426-07450f99.pth',
            prefix='backbone')),
    head=dict(num_classes=5, topk=(1, )))
