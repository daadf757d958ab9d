# DenseNet-121 from MMPretrain's ImageNet weights (74.96 % top-1, converted
# from torchvision) in place of resnet50_flowers.py's ResNet-50, with the
# same hyper-parameters: batch 32, lr 0.01, 30 epochs, and the first two of
# the four stages frozen (frozen_stages=2 freezes DenseNet's first two dense
# blocks with their transitions; unlike ResNet's, MMPretrain's DenseNet
# never freezes its stem, a 7x7 conv and a BN: 9.5k of 7M weights).
_base_ = './resnet50_flowers.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='DenseNet',
        arch='121',
        frozen_stages=2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'densenet/densenet121_4xb256_in1k_20220426-07450f99.pth',
            prefix='backbone')),
    head=dict(in_channels=1024))
