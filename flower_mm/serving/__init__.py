"""Serve a trained model over HTTP: a page for people, JSON for programs."""
from .app import build_app, create_app
from .worker import BatchingWorker, QueueFullError

__all__ = ['BatchingWorker', 'QueueFullError', 'build_app', 'create_app']
