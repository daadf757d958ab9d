"""flower-mm: fine-tune ImageNet-pretrained classifiers on 5 flower classes.

Importing the package loads nothing heavy; :mod:`flower_mm.registration`
registers the modules in MMPretrain's registries (configs list it in
``custom_imports``, the tools import it).
"""
__version__ = '0.1.0'
