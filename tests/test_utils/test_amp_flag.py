"""--amp means one thing in tools/train.py, tools/test.py, tools/sweep.py."""
import re

from conftest import load_tool
from mmengine.config import Config

from flower_mm.utils import AMP_FLAG_HELP, amp_flag_dtype


def amp_help(parser) -> str:
    action = next(a for a in parser._actions if '--amp' in a.option_strings)
    return re.sub(r'\s+', ' ', action.help)


def test_amp_help_is_the_same_in_every_tool():
    from flower_mm.cli import test, train
    for name, tool in (('train', train), ('test', test),
                       ('sweep', load_tool('sweep'))):
        text = amp_help(tool.get_args_parser())
        assert text.endswith(AMP_FLAG_HELP), (name, text)
    for device in ('on a GPU', 'native bf16', 'slower than fp32'):
        assert device in AMP_FLAG_HELP


def test_train_amp_autocasts_on_every_device():
    assert amp_flag_dtype('cpu') == 'bfloat16'
    assert amp_flag_dtype('cuda') == 'float16'
    from flower_mm.cli import train as tool
    cfg = Config(
        dict(optim_wrapper=dict(type='OptimWrapper', dtype='auto',
                                optimizer=dict(type='SGD', lr=1))))
    cfg = tool.merge_args(cfg, tool.get_args_parser().parse_args(
        ['x.py', '--amp']))
    # As tools/test.py --amp: bf16 on a CPU even without native bf16.
    assert cfg.optim_wrapper.dtype == amp_flag_dtype()
