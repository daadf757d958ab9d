# As resnet50_flowers.py, with every stage trained (nothing frozen).
_base_ = './resnet50_flowers.py'

model = dict(backbone=dict(frozen_stages=-1))
