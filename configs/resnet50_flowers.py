# ResNet-50 from MMPretrain's ImageNet weights (76.55 % top-1), stem and the
# first two stages frozen, fine-tuned on the 5 flower classes.
# MMPretrain's ImageNet recipe (mmpretrain::resnet/resnet50_8xb32_in1k.py)
# part by part: its model; its dataset, schedule and runtime under the
# flower settings that replace them (MMEngine allows no key in two bases,
# so the flower parts sit on the recipe's parts, not on the whole recipe).
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    './_base_/datasets/flowers.py',
    './_base_/schedules/flowers.py',
    './_base_/flowers_runtime.py',
]

# 5 classes; top-5 of 5 classes is always 100 %, so report top-1.
model = dict(
    backbone=dict(
        frozen_stages=2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth',
            prefix='backbone')),
    head=dict(num_classes=5, topk=(1, )))
