"""flower_mm.utils.precision: fp32 logits under autocast."""
import torch
import torch.nn as nn

import flower_mm.utils.precision as precision


def test_float32_logits_makes_the_softmax_exact_and_cleans_up():
    model = nn.Module()
    model.head = nn.Linear(64, 5)
    features = torch.randn(8, 64) * 5

    def scores():
        with torch.autocast('cpu', dtype=torch.bfloat16):
            return model.head(features).softmax(1)

    assert scores().dtype == torch.bfloat16  # what ClsHead.predict got
    with precision.float32_logits(model):
        inside = scores()
    assert inside.dtype == torch.float32
    assert inside.sum(1).sub(1).abs().max() < 1e-6
    assert not model.head._forward_hooks  # removed on exit
    assert scores().dtype == torch.bfloat16
    headless = nn.Linear(64, 5)
    with precision.float32_logits(headless):  # nothing to cast: left as is
        assert not headless._forward_hooks
