"""Report the user's mistakes as one line, not a traceback.

The ground floor of flower-mm's errors: it imports nothing of the package,
and every error caused by bad input (a config key, data on disk, a
checkpoint, a download) derives from :class:`FlowerUserError`.
"""
import os
import sys
from contextlib import contextmanager


class FlowerUserError(Exception):
    """Bad input the user can fix; the message says what and how."""


@contextmanager
def exit_on_user_error():
    """Exit with ``error: <message>`` on stderr (status 1) where the block
    raises a :class:`FlowerUserError`; other errors keep their traceback.
    ``FLOWER_MM_DEBUG=1`` keeps it for these too."""
    try:
        yield
    except FlowerUserError as err:
        if os.environ.get('FLOWER_MM_DEBUG', '0') not in ('', '0'):
            raise
        sys.exit(f'error: {err}')
