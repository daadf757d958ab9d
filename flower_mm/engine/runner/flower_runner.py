"""MMEngine's Runner, able to run data-parallel on machines without GPUs."""
import atexit
import datetime
import inspect
import os
import subprocess
from typing import Dict, Optional

import torch
import torch.distributed as torch_dist
from mmengine.device import get_device
from mmengine.dist import is_distributed
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import MODEL_WRAPPERS
from mmengine.runner import Runner
from mmpretrain.registry import DATASETS, RUNNERS
from torch.nn.parallel import DistributedDataParallel

from ...datasets.class_folder_dataset import dataset_classes
from ...utils.config_checks import ConfigError
from ...utils.num_classes import set_auto_num_classes, uses_auto_num_classes
from ...utils.machine import resolve_num_workers
from .torch_compile import (compile_forward, compile_pays,
                            compiler_unavailable_reason)


@RUNNERS.register_module()
class FlowerRunner(Runner):
    """:class:`mmengine.runner.Runner` that also trains data-parallel on CPUs.

    Selected with ``runner_type = 'FlowerRunner'`` (the flower base config
    does; MMPretrain's and flower-mm's ``tools/train.py`` and
    ``tools/test.py`` build ``RUNNERS`` when a config names one). On GPUs it
    behaves exactly as MMEngine's Runner: NCCL, one GPU per process. Where
    there is no GPU, MMEngine 0.10.7 cannot start a distributed run:

    - ``init_dist`` calls ``torch.cuda.set_device`` unconditionally
      ("Found no NVIDIA driver"), and the configs inherit
      ``env_cfg.dist_cfg.backend='nccl'``, which needs GPUs. Here the
      process group is initialised with gloo, from the environment that
      torchrun (``--launcher pytorch``), Slurm (``--launcher slurm``) or
      Open MPI (``--launcher mpi``) sets, before MMEngine's ``setup_env``,
      which then finds it initialised.
    - ``wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to
      ``DistributedDataParallel``, which CPU modules reject. Here DDP wrappers
      get ``device_ids=None`` on the CPU.

    It also resolves ``num_classes='auto'`` (head and data preprocessor) to
    the number of classes of the run's dataset before building the model,
    so a config for any class-folder dataset need not count its classes
    (``configs/resnet50_custom_folders.py``), and gives the datasets that
    take one its work dir (where a list of broken images goes).

    ``compile`` (MMEngine's key: False, True or ``torch.compile``'s
    options) compiles the network's forward (:func:`compile_forward`), not
    ``train_step``, in training (validation shares it) and in
    ``tools/test.py``; ``'auto'`` compiles where it pays
    (:func:`compile_pays`), saying so in one log line.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for attr in ('_train_dataloader', '_val_dataloader',
                     '_test_dataloader'):
            loader = getattr(self, attr)
            if isinstance(loader, dict) and _dataset_takes(
                    loader.get('dataset'), 'work_dir'):
                # Copies: the config, dumped as it was written, keeps none.
                setattr(self, attr, dict(loader, dataset=dict(
                    loader['dataset'], work_dir=self.work_dir)))

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        """MMEngine's, with ``num_workers='auto'`` resolved on this machine
        (:func:`~flower_mm.utils.machine.auto_num_workers`), so configs
        need not probe the CPU and dump the same everywhere."""
        if isinstance(dataloader, dict) and \
                dataloader.get('num_workers') == 'auto':
            workers = resolve_num_workers('auto')
            print_log(f"num_workers='auto': {workers} data loader workers",
                      logger='current')
            dataloader = dict(dataloader, num_workers=workers)
        return Runner.build_dataloader(dataloader, seed, diff_rank_seed)

    def build_model(self, model) -> torch.nn.Module:
        if isinstance(model, dict) and uses_auto_num_classes(model):
            self._resolve_auto_num_classes(model)
        return super().build_model(model)

    def _resolve_auto_num_classes(self, model: Dict) -> None:
        """``num_classes='auto'``: size the head and data preprocessor by
        the classes of the first dataset the run has (train, else val, else
        test), and give the other splits the same class list, so that a
        split missing a class is named instead of relabelled."""
        loaders = [
            loader for loader in (self._train_dataloader,
                                  self._val_dataloader,
                                  self._test_dataloader)
            if isinstance(loader, dict) and 'dataset' in loader
        ]
        classes = dataset_classes(loaders[0]['dataset']) if loaders else None
        if not classes:
            raise ConfigError(
                "model.head.num_classes is 'auto' but the run has no dataset "
                'that names its classes: set model.head.num_classes and '
                'data_preprocessor.num_classes to the number of classes.')
        for loader in loaders[1:]:
            if _dataset_takes(loader['dataset'], 'classes'):
                loader['dataset'].setdefault('classes', list(classes))
        set_auto_num_classes(model, len(classes))
        # The dumped config says the number, so it rebuilds the model alone.
        set_auto_num_classes(self.cfg.model, len(classes), self.cfg)
        print_log(
            f'num_classes=auto: {len(classes)} classes '
            f'({", ".join(classes)})', logger='current')

    def _maybe_compile(self, target: str) -> None:
        """MMEngine calls it to compile ``train_step`` before training."""
        # The run's length does not matter: 'auto' keeps training eager
        # (compile_pays), compile=True compiles it.
        self._compile_forward(0, training=True)

    def build_test_loop(self, loop):
        loop = super().build_test_loop(loop)
        self._compile_forward(len(loop.dataloader.dataset), training=False)
        return loop

    def _compile_forward(self, num_images: int, training: bool) -> None:
        """Compile the model's forward as ``cfg.compile`` says."""
        option = self.cfg.get('compile', None)
        device_type = get_device()
        if option == 'auto':
            pays, why = compile_pays(device_type, num_images, training)
            print_log(f"compile='auto': "
                      f"{'compiled' if pays else 'eager'} ({why})",
                      logger='current')
            if not pays:
                return
            option = True
        if not option:
            return
        reason = compiler_unavailable_reason(device_type)
        if reason:
            raise ConfigError(f'compile={option!r}: {reason}; or set '
                              'compile=False.')
        compile_forward(self.model, inference=not training,
                        **(option if isinstance(option, dict) else {}))
        print_log('compile: the model\'s forward is compiled (Inductor); '
                  'its first iterations take the compile time',
                  logger='current')

    def setup_env(self, env_cfg: Dict) -> None:
        if self.distributed and not is_distributed() \
                and get_device() == 'cpu':
            init_cpu_dist(self.launcher, **env_cfg.get('dist_cfg', {}))
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: Optional[Dict],
                   model: torch.nn.Module) -> torch.nn.Module:
        if self.distributed and not is_model_wrapper(model) \
                and get_device() == 'cpu':
            # MMEngine's defaults for a missing model_wrapper_cfg.
            model_wrapper_cfg = dict(
                model_wrapper_cfg or dict(
                    type='MMDistributedDataParallel',
                    broadcast_buffers=False,
                    find_unused_parameters=self.cfg.get(
                        'find_unused_parameters', False)))
            model_wrapper_cfg.setdefault('type', 'MMDistributedDataParallel')
            wrapper = MODEL_WRAPPERS.get(model_wrapper_cfg['type'])
            if isinstance(wrapper, type) and issubclass(
                    wrapper, DistributedDataParallel):
                # A config value wins over Runner's device_ids default.
                model_wrapper_cfg['device_ids'] = None
        return super().wrap_model(model_wrapper_cfg, model)


def _dataset_takes(dataset_cfg, argument: str) -> bool:
    """Whether the class a dataset config builds takes ``argument``
    (following ``**kwargs`` to its base classes)."""
    type_ = dataset_cfg.get('type') if isinstance(dataset_cfg, dict) else None
    cls = type_ if isinstance(type_, type) else DATASETS.get(type_)
    for klass in getattr(cls, '__mro__', ()):
        if '__init__' in vars(klass):
            params = inspect.signature(klass.__init__).parameters
            if argument in params:
                return True
            if all(p.kind is not p.VAR_KEYWORD for p in params.values()):
                return False
    return False


def init_cpu_dist(launcher: str,
                  backend: str = 'gloo',
                  timeout: Optional[int] = None,
                  port: Optional[int] = None,
                  **kwargs) -> None:
    """Initialise the default process group with gloo, without a GPU.

    As :func:`mmengine.dist.init_dist` for the same ``launcher``, minus its
    ``torch.cuda.set_device`` call. ``backend`` is the configured one: gloo is
    used whatever it says, since NCCL needs GPUs.

    Args:
        launcher (str): 'pytorch' (torchrun), 'slurm' or 'mpi'.
        backend (str): ``env_cfg.dist_cfg.backend``; only logged.
        timeout (int, optional): Seconds, as ``env_cfg.dist_cfg.timeout``.
        port (int, optional): Master port for Slurm, as MMEngine's.
        **kwargs: Passed to :func:`torch.distributed.init_process_group`
            (``init_backend`` must be 'torch', the default).
    """
    if kwargs.pop('init_backend', 'torch') != 'torch':
        raise ValueError('env_cfg.dist_cfg.init_backend other than "torch" '
                         'needs GPUs; remove it to train on CPUs.')
    if timeout is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=timeout)
    if launcher == 'slurm':
        _set_env_from_slurm(port)
    elif launcher == 'mpi':
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            raise KeyError('The environment variable MASTER_ADDR is not set')
        os.environ['WORLD_SIZE'] = os.environ['OMPI_COMM_WORLD_SIZE']
        os.environ['RANK'] = os.environ['OMPI_COMM_WORLD_RANK']
        os.environ['LOCAL_RANK'] = os.environ['OMPI_COMM_WORLD_LOCAL_RANK']
    elif launcher != 'pytorch':  # torchrun has set RANK, WORLD_SIZE...
        raise ValueError(f'Invalid launcher type: {launcher}')
    torch_dist.init_process_group(backend='gloo', **kwargs)
    # A gloo group still alive at interpreter exit can abort the process
    # ("terminate called without an active exception"), failing the job.
    atexit.register(_destroy_process_group)
    if backend != 'gloo' and torch_dist.get_rank() == 0:
        print_log(
            f'No GPU: distributed {launcher} run with the gloo backend '
            f'instead of env_cfg.dist_cfg.backend={backend!r}.',
            logger='current')


def _destroy_process_group() -> None:
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def _set_env_from_slurm(port: Optional[int]) -> None:
    """What :func:`mmengine.dist.utils._init_dist_slurm` sets up."""
    node_list = os.environ['SLURM_NODELIST']
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {node_list} | head -n1')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
