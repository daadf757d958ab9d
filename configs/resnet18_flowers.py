# ResNet-18 from MMPretrain's ImageNet weights (69.90 % top-1) in place of
# resnet50_flowers.py's ResNet-50; everything else as there (batch 32,
# lr 0.01, stem and first two stages frozen, 30 epochs).
_base_ = './resnet50_flowers.py'

model = dict(
    backbone=dict(
        depth=18,
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'resnet/resnet18_8xb32_in1k_20210831-fbbb1da6.pth')),
    head=dict(in_channels=512))
