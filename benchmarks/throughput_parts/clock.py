"""What every case measures: time per iteration, data wait, memory."""
import os
import resource
import time


class IterClock:
    """Timestamps iterations: images/s, data wait and step time."""

    def __init__(self, batch_size: int, warmup: int, device: str,
                 total: int):
        self.batch_size, self.warmup, self.device = batch_size, warmup, device
        self.total = total  # iterations in the run, for memory at the end
        self.starts, self.ends = [], []
        self.memory = {}

    def _now(self) -> float:
        if self.device == 'cuda':
            import torch
            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self) -> None:
        self.starts.append(self._now())

    def end(self) -> None:
        self.ends.append(self._now())
        if len(self.ends) == self.total:
            self.memory = memory_footprint(self.device)

    def result(self) -> dict:
        w, n = self.warmup, len(self.ends)
        if n <= w + 1:
            raise RuntimeError(f'only {n} iterations ran; {w} are warm-up')
        elapsed = self.ends[-1] - self.ends[w - 1]
        data = sum(self.starts[i] - self.ends[i - 1] for i in range(w, n))
        return dict(
            images_per_s=self.batch_size * (n - w) / elapsed,
            # what the first batch took: a compile shows here
            first_iter_s=self.ends[0] - self.starts[0],
            iter_ms=1e3 * elapsed / (n - w),
            data_ms=1e3 * data / (n - w),
            measured_iters=n - w,
            **self.memory)


def memory_footprint(device: str) -> dict:
    """Peak RSS of this process; PSS of it and its data workers now."""
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pids = [os.getpid()] + _child_pids(os.getpid())
    pss = sum(_pss_mb(pid) for pid in pids)
    out = dict(peak_rss_mb=peak_rss, total_pss_mb=pss, processes=len(pids))
    if device == 'cuda':
        import torch
        out['cuda_peak_mb'] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _child_pids(pid: int) -> list:
    children = []
    for task in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{task}/children') as f:
                children += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return children


def _pss_mb(pid: int) -> float:
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            for line in f:
                if line.startswith('Pss:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.


def make_clock_hook(clock: IterClock, mode: str, epochs: list):
    """An MMEngine hook feeding ``clock`` (and epoch times)."""
    from mmengine.hooks import Hook

    class ClockHook(Hook):
        priority = 'LOWEST'  # stamp after the logger and the other hooks

        def _before(self, runner, batch_idx, data_batch=None):
            clock.start()

        def _after(self, runner, batch_idx, data_batch=None, outputs=None):
            clock.end()

        def before_train_epoch(self, runner):
            epochs.append([time.perf_counter()])

        def after_train_epoch(self, runner):
            epochs[-1].append(time.perf_counter())

    setattr(ClockHook, f'before_{mode}_iter', ClockHook._before)
    setattr(ClockHook, f'after_{mode}_iter', ClockHook._after)
    return ClockHook()
