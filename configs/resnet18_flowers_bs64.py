# resnet18_flowers.py with a batch of 64. The learning rate follows the
# linear scaling rule (lr 0.01 per 32 images), so every batch size trains
# with the same lr per image and the same 30-epoch schedule; base_batch_size
# moves with it so that --auto-scale-lr does not scale it a second time.
_base_ = './resnet18_flowers.py'

train_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=0.02))
auto_scale_lr = dict(base_batch_size=64)
