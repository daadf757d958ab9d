"""Serve a trained model over HTTP: a page for people, JSON for programs."""
from .app import BACKENDS, build_app, create_app
from .worker import BatchingWorker, QueueFullError

__all__ = [
    'BACKENDS', 'BatchingWorker', 'QueueFullError', 'build_app', 'create_app'
]
