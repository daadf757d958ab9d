"""Class activation maps (Grad-CAM and kin) on the project's classifier.

One function, :func:`compute_cam`, serves ``tools/vis_cam.py`` and any other
caller (e.g. a web page): it takes a :class:`PyTorchPredictor`, so the
images go through the same decoding and test pipeline as ``tools/infer.py``
and ``tools/test.py``, and runs ``grad-cam`` 1.5 on the model in fp32.
"""
import difflib
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dataset import default_collate
from mmengine.model import is_model_wrapper

from flower_mm.engine.runner import eager_forward
from flower_mm.utils import ConfigError
# Drawing lives with the other pictures; exported here as before.
from flower_mm.visualization.explain import overlay_heatmap  # noqa: F401

# Method name (as MMPretrain's vis_cam.py spells it) -> grad-cam class name.
CAM_METHODS = {
    'gradcam': 'GradCAM',
    'gradcam++': 'GradCAMPlusPlus',
    'xgradcam': 'XGradCAM',
    'eigencam': 'EigenCAM',
    'layercam': 'LayerCAM',
}


class CamTargetError(ConfigError):
    """A target layer or category that does not exist in the model."""


def default_target_layers(model: torch.nn.Module) -> List[str]:
    """The layer whose activations explain the prediction, by backbone.

    ResNet (and ResNet-like backbones with ``res_layers``): the last stage;
    DenseNet: the last dense block. Raises :class:`CamTargetError` listing
    candidate names for any other backbone.
    """
    backbone = getattr(model, 'backbone', None)
    res_layers = getattr(backbone, 'res_layers', None)
    if res_layers:
        return [f'backbone.{res_layers[-1]}']
    stages = getattr(backbone, 'stages', None)
    if type(backbone).__name__ == 'DenseNet' and stages is not None:
        return [f'backbone.stages.{len(stages) - 1}']
    raise CamTargetError(
        f'no default CAM target layer for backbone '
        f'{type(backbone).__name__}; pass --target-layers with one of: '
        f'{", ".join(candidate_layer_names(model))}')


def candidate_layer_names(model: torch.nn.Module,
                          max_depth: int = 2) -> List[str]:
    """Backbone and neck modules up to ``max_depth`` levels below them: the
    usual CAM targets (any name from ``model.named_modules()`` works)."""
    return [
        name for name, _ in model.named_modules()
        if name.split('.')[0] in ('backbone', 'neck')
        and 1 < len(name.split('.')) <= max_depth + 1
    ]


def resolve_target_layers(model: torch.nn.Module,
                          names: Optional[Sequence[str]] = None
                          ) -> List[torch.nn.Module]:
    """Modules named ``names`` (``backbone.layer4``...); the backbone's
    default when None. An unknown name raises :class:`CamTargetError`."""
    names = list(names or default_target_layers(model))
    modules = dict(model.named_modules())
    layers = []
    for name in names:
        # MMPretrain's vis_cam.py examples write 'model.backbone...'.
        key = name[len('model.'):] if name.startswith('model.') else name
        if key not in modules or not key:
            close = difflib.get_close_matches(key, list(modules), n=3)
            hint = f' (did you mean {", ".join(close)}?)' if close else ''
            raise CamTargetError(
                f'--target-layers "{name}" is not a layer of the model'
                f'{hint}; valid names include: '
                f'{", ".join(candidate_layer_names(model))}')
        layers.append(modules[key])
    return layers


def resolve_target_category(category: Union[int, str, None],
                            classes: Sequence[str]) -> Optional[int]:
    """A class index from an index or a class name (None: the predicted
    class of each image)."""
    if category is None:
        return None
    if isinstance(category, str) and category.lstrip('-').isdigit():
        category = int(category)
    if isinstance(category, str):
        if category not in classes:
            raise CamTargetError(
                f'--target-category "{category}" is not a class; use an '
                f'index 0-{len(classes) - 1} or one of: {", ".join(classes)}')
        return list(classes).index(category)
    if not 0 <= category < len(classes):
        raise CamTargetError(
            f'--target-category {category} is out of range; use an index '
            f'0-{len(classes) - 1} or one of: {", ".join(classes)}')
    return category


def can_explain(classifier) -> bool:
    """Whether :func:`compute_cam` can explain ``classifier``'s predictions:
    it needs the PyTorch model for gradients (a :class:`PyTorchPredictor`,
    compiled or not), which onnxruntime and OpenVINO do not have."""
    return getattr(classifier, 'backend', None) in ('pytorch',
                                                     'pytorch-compiled')


class _Logits(torch.nn.Module):
    """The classifier as grad-cam calls it: normalised images -> logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, inputs):
        return self.model(inputs, mode='tensor')


def compute_cam(classifier,
                images: Sequence[Union[str, np.ndarray]],
                method: str = 'gradcam',
                target_layers: Optional[Sequence[str]] = None,
                target_category: Union[int, str, None] = None,
                aug_smooth: bool = False,
                eigen_smooth: bool = False) -> List[dict]:
    """Class activation maps of ``images`` for a trained classifier.

    Args:
        classifier (PyTorchPredictor): The project's inference path
            (config, checkpoint, test pipeline), eager or compiled. The CAM
            runs the eager forward in fp32 whatever ``test_cfg.fp16`` says:
            gradients in bf16/fp16 make noisy maps.
        images: Image files, or decoded BGR ``uint8`` arrays (H, W, 3).
        method: One of :data:`CAM_METHODS` (case-insensitive).
        target_layers: Layer names (``backbone.layer4``); by default the
            backbone's last stage (:func:`default_target_layers`).
        target_category: Class index or name to explain; None explains the
            predicted class of each image.
        aug_smooth: grad-cam's test-time augmentation (flip, brightness):
            smoother maps, 6x the time.
        eigen_smooth: Keep the first principal component of the weighted
            activations (less noise). As with ``eigencam``, the component's
            sign is arbitrary (grad-cam's SVD): the map may light up the
            background instead of the object.

    Returns:
        list[dict]: One per image, in order: ``image`` (RGB ``uint8``, the
        view the model saw: after the test pipeline's resize and crop),
        ``heatmap`` (float32 in [0, 1], same height and width as
        ``image``), ``pred_label``/``pred_class``/``pred_score`` (softmax
        probability) and ``target_label``/``target_class`` (the class the
        map explains).
    """
    import pytorch_grad_cam

    key = method.lower()
    if key not in CAM_METHODS:
        raise CamTargetError(f'--method "{method}" is not supported; use '
                             f'one of: {", ".join(CAM_METHODS)}')
    model = classifier.model
    model = model.module if is_model_wrapper(model) else model
    target = resolve_target_category(target_category, classifier.classes)
    layers = resolve_target_layers(model, target_layers)
    cam_class = getattr(pytorch_grad_cam, CAM_METHODS[key])

    results = []
    device_type = torch.device(classifier.device).type
    cam = cam_class(model=_Logits(model), target_layers=layers)
    # Not `with cam`: grad-cam's __exit__ swallows IndexErrors.
    try:
        # Explicitly fp32: callers may run inside the test's autocast; the
        # eager forward: a compiled graph hides the layers' gradients.
        with torch.autocast(device_type, enabled=False), \
                torch.enable_grad(), eager_forward(model):
            for image in images:
                results.append(
                    _explain_one(cam, classifier, model, image, target,
                                 aug_smooth, eigen_smooth))
    finally:
        cam.activations_and_grads.release()
    return results


def _explain_one(cam, classifier, model, image, target, aug_smooth,
                 eigen_smooth) -> dict:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    data = classifier.preprocess(image)
    batch = model.data_preprocessor(default_collate([data]), False)
    inputs = batch['inputs'].float()
    with torch.no_grad():
        scores = torch.softmax(cam.model(inputs).float(), dim=-1)[0]
    pred = int(scores.argmax())
    explained = pred if target is None else target
    # An explicit target: with aug_smooth, an augmented view must not
    # explain a class of its own.
    heatmap = cam(
        input_tensor=inputs,
        targets=[ClassifierOutputTarget(explained)],
        aug_smooth=aug_smooth,
        eigen_smooth=eigen_smooth)[0]
    view = data['inputs'].permute(1, 2, 0).cpu().numpy()  # HWC uint8
    if getattr(model.data_preprocessor, 'to_rgb', False):
        view = view[..., ::-1]  # decoded as BGR, shown as RGB
    classes = classifier.classes
    return dict(
        image=np.ascontiguousarray(view),
        heatmap=np.clip(heatmap, 0, 1).astype(np.float32),
        pred_label=pred,
        pred_class=classes[pred],
        pred_score=float(scores[pred]),
        target_label=explained,
        target_class=classes[explained])

