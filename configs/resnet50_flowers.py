# ResNet-50 from MMPretrain's ImageNet weights (76.55 % top-1), stem and the
# first two stages frozen, fine-tuned on the 5 flower classes.
_base_ = './_base_/flowers.py'

model = dict(
    backbone=dict(
        frozen_stages=2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth',
            prefix='backbone')))
