# resnet18_flowers.py with a batch of 128; lr scaled linearly from 0.01 per
# 32 images, as in resnet18_flowers_bs64.py.
_base_ = './resnet18_flowers.py'

train_dataloader = dict(batch_size=128)
optim_wrapper = dict(optimizer=dict(lr=0.04))
auto_scale_lr = dict(base_batch_size=128)
