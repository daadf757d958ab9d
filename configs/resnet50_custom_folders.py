# resnet50_flowers.py on your own photos: <data_root>/{train,val}/<class>/*.jpg
# Classes: the folder names (or <data_root>/classes.txt); the model follows.
_base_ = './resnet50_flowers.py'

photos = dict(type='ClassFolderDataset', data_root='data/custom_dataset')
train_dataloader = dict(dataset=photos)
val_dataloader = dict(dataset=photos)
test_dataloader = dict(dataset=photos)
model = dict(head=dict(num_classes='auto'))
data_preprocessor = dict(num_classes='auto')
