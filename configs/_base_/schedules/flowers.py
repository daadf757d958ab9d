# Fine-tuning on MMPretrain's ImageNet schedule (SGD, step decay).
_base_ = 'mmpretrain::_base_/schedules/imagenet_bs256.py'

# Fine-tuning needs a 10x smaller learning rate than ImageNet
# training from scratch; lr 0.01 is for a total batch size of 32.
# Mixed precision wherever it is fast (docs/speed.md): fp16 autocast with
# dynamic loss scaling on a GPU, bf16 autocast on a CPU with native bf16
# (AVX512-BF16 or AMX), fp32 elsewhere. Plain fp32 everywhere: --cfg-options
# optim_wrapper.dtype=float32 val_cfg.fp16=False test_cfg.fp16=False
optim_wrapper = dict(
    type='DeviceAmpOptimWrapper',
    dtype='auto',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[10, 20], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=1)
val_cfg = dict(type='AmpValLoop', fp16='auto')
test_cfg = dict(type='AmpTestLoop', fp16='auto')
auto_scale_lr = dict(base_batch_size=32)
