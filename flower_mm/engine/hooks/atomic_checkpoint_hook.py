"""Crash-safe checkpoints: atomic writes and a ``--resume`` that skips
incomplete files."""
import os
import os.path as osp
import re
import zipfile
from typing import List, Optional, Tuple

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmpretrain.registry import HOOKS

from flower_mm.fileio import atomic_write_bytes

# Temporary files of atomic_write_bytes: <final name>.tmp-<pid>.
_TMP_SUFFIX = re.compile(r'\.tmp-(\d+)$')


def check_checkpoint_complete(path: str) -> Tuple[bool, str]:
    """Whether ``path`` holds a whole checkpoint, and if not, why not.

    ``torch.save`` writes a zip archive whose central directory comes last
    and which stores a CRC-32 per entry: a truncated file has no central
    directory, a damaged one fails the CRC. Nothing is unpickled. Files in
    torch's legacy (non-zip) format are checked by loading them with
    ``weights_only=True``.
    """
    if not osp.isfile(path):
        return False, 'the file does not exist'
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
            return False, f'it is not a readable archive ({err})'
        if damaged is not None:
            return False, f'its entry {damaged!r} fails the CRC check'
        return True, ''
    with open(path, 'rb') as f:
        if f.read(4) == b'PK\x03\x04':
            return False, ('it is truncated (a zip archive without its '
                           'central directory)')
    try:
        torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # truncated, empty or not a checkpoint at all
        return False, (f'it is incomplete or not a checkpoint '
                       f'({type(err).__name__}: {err})')
    return True, ''


def find_last_complete_checkpoint(ckpt_dir: str,
                                  filename_tmpl: str = 'epoch_{}.pth'
                                  ) -> Optional[str]:
    """The complete checkpoint named like ``filename_tmpl`` with the highest
    step (epoch or iteration) in ``ckpt_dir``, or None."""
    if filename_tmpl.count('{}') != 1 or not osp.isdir(ckpt_dir):
        return None
    head, tail = filename_tmpl.split('{}')
    pattern = re.compile(f'^{re.escape(head)}(\\d+){re.escape(tail)}$')
    steps = []
    for name in os.listdir(ckpt_dir):
        match = pattern.match(name)
        if match:
            steps.append((int(match.group(1)), name))
    for _, name in sorted(steps, reverse=True):
        path = osp.join(ckpt_dir, name)
        if check_checkpoint_complete(path)[0]:
            return path
    return None


def _is_local(path: str) -> bool:
    return '://' not in str(path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's :class:`CheckpointHook` made crash-safe. Same arguments.

    - Checkpoints in a local ``out_dir`` are written through
      :class:`~flower_mm.fileio.AtomicLocalBackend` (temporary file, fsync,
      rename), unless ``backend_args``/``file_client_args`` choose a backend:
      a crash or a full disk during a save leaves the previous checkpoint,
      and any older version of the same file, intact.
    - ``last_checkpoint``, the file ``--resume`` reads, is rewritten
      atomically and only after the checkpoint it names is complete.
    - With ``max_keep_ckpts``, the oldest checkpoint is deleted after the new
      one is saved, not before: a failed save never leaves fewer complete
      checkpoints than before it.
    - Auto resume (``resume=True`` without ``load_from``, i.e. ``--resume``)
      checks the checkpoint ``last_checkpoint`` names; if it is missing or
      incomplete, or ``last_checkpoint`` itself is, training resumes from the
      newest complete ``filename_tmpl`` checkpoint instead and says so.
    - Temporary files left by a killed save are removed at the next start.

    The best checkpoint (``save_best``) is saved as in MMEngine, through the
    atomic backend too; MMEngine deletes the previous best before saving the
    new one, so a crash between the two leaves no best checkpoint (the
    periodic ones are unaffected).
    """

    def before_run(self, runner) -> None:
        # Runs before Runner.load_or_resume, which reads `_load_from`.
        if runner._resume and runner._load_from is None:
            fallback = self._auto_resume_fallback(runner)
            if fallback is not None:
                runner._load_from = fallback

    def before_train(self, runner) -> None:
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        if (self.backend_args is None and self.file_client_args is None
                and _is_local(out_dir)):
            self.backend_args = dict(backend='local_atomic')
        super().before_train(runner)
        if is_main_process() and _is_local(self.out_dir):
            self._remove_stale_tmp_files(runner, str(self.out_dir))

    def _save_checkpoint_with_step(self, runner, step, meta):
        # MMEngine 0.10.7's version, reordered: save, then point
        # last_checkpoint at it (atomically), then delete the expired one.
        expired_step = None
        if self.max_keep_ckpts > 0 and not (len(self.keep_ckpt_ids) > 0 and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                expired_step = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        previous = self._read_last_checkpoint(runner.work_dir)
        try:
            runner.save_checkpoint(
                self.out_dir,
                ckpt_filename,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
        except OSError as err:
            atomic = (self.backend_args or {}).get('backend') == \
                'local_atomic'
            kept = (f'the previous checkpoint {previous} is intact; '
                    if previous and atomic else '')
            message = (f'Saving checkpoint {self.last_ckpt} failed '
                       f'({err.strerror or err}); {kept}free space or fix '
                       'the file system, then run again with --resume.')
            raise (OSError(err.errno, message)
                   if err.errno is not None else OSError(message)) from err

        if not is_main_process():
            return
        atomic_write_bytes(
            str(self.last_ckpt).encode(),
            osp.join(runner.work_dir, 'last_checkpoint'))

        if expired_step is not None:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(expired_step))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                # checkpoints saved by deepspeed are directories
                self.file_backend.rmtree(path)

    @staticmethod
    def _read_last_checkpoint(work_dir: str) -> Optional[str]:
        try:
            with open(osp.join(work_dir, 'last_checkpoint')) as f:
                return f.read().strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    def _checkpoint_dirs(self, runner, named: Optional[str]) -> List[str]:
        # Where CheckpointHook.before_train will put the checkpoints.
        out_dir = str(self.out_dir or runner.work_dir)
        if self.out_dir is not None and out_dir != runner.work_dir:
            out_dir = osp.join(out_dir,
                               osp.basename(runner.work_dir.rstrip(osp.sep)))
        dirs = [osp.dirname(named)] if named and _is_local(named) else []
        if _is_local(out_dir) and out_dir not in dirs:
            dirs.append(out_dir)
        return dirs

    def _auto_resume_fallback(self, runner) -> Optional[str]:
        """The checkpoint to resume from when ``last_checkpoint`` cannot be
        used, else None (MMEngine's own choice stands)."""
        record = osp.join(runner.work_dir, 'last_checkpoint')
        named = self._read_last_checkpoint(runner.work_dir)
        if named is not None and not _is_local(named):
            return None  # remote storage: MMEngine's own resume
        if named is not None:
            complete, why_not = check_checkpoint_complete(named)
            if complete:
                return None
            problem = f'{record} names {named}, but {why_not}'
        elif osp.exists(record):
            problem = f'{record} is empty or unreadable'
        else:
            problem = f'there is no {record}'

        fallback = None
        for ckpt_dir in self._checkpoint_dirs(runner, named):
            fallback = find_last_complete_checkpoint(ckpt_dir,
                                                     self.filename_tmpl)
            if fallback is not None:
                break
        if fallback is not None:
            runner.logger.warning(
                f'Auto resume: {problem}. Resuming from the newest complete '
                f'checkpoint instead: {fallback}')
            return fallback
        if named is None:
            return None  # nothing saved yet: MMEngine starts from scratch
        raise FileNotFoundError(
            f'Cannot resume: {problem}, and no other complete checkpoint '
            f'({self.filename_tmpl.format("*")}) is in '
            f'{" or ".join(self._checkpoint_dirs(runner, named))}. Pass '
            '--resume /path/to/checkpoint.pth, or delete '
            f'{record} to train from scratch.')

    @staticmethod
    def _remove_stale_tmp_files(runner, ckpt_dir: str) -> None:
        if not osp.isdir(ckpt_dir):
            return
        for name in sorted(os.listdir(ckpt_dir)):
            match = _TMP_SUFFIX.search(name)
            if match is None or _process_alive(int(match.group(1))):
                continue
            os.remove(osp.join(ckpt_dir, name))
            runner.logger.info(
                f'Removed {name}, a partial file left by a killed save.')


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
