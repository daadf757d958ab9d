"""One download helper: a ``.part`` file, retries that resume (HTTP Range)."""
import http.client
import os
import posixpath
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .common import PreparationError, log, progress

CHUNK = 1 << 20


def download_file(url: str, dest_dir, retries: int = 3, backoff: float = 1.0,
                  timeout: float = 60.0, progress_bar: bool = True,
                  logger=None, hint_out_dir=None) -> Path:
    """Download ``url`` to ``dest_dir/<name>`` (reused if there) and return it.

    Connection errors, HTTP 5xx/408/429 and early closes are retried after
    ``backoff``, 2 * ``backoff``... seconds; a retry asks for the missing
    bytes only. Raises :class:`PreparationError` saying how to get the file
    by hand (with ``--out hint_out_dir``).
    """
    name = posixpath.basename(urllib.parse.urlparse(url).path) or 'download'
    dest = Path(dest_dir) / name
    if dest.is_file():  # only a complete download gets this name
        log(f'Using the cached download {dest}', logger)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part, error = dest.with_name(name + '.part'), ''
    for attempt in range(retries + 1):
        if attempt:
            wait = backoff * 2**(attempt - 1)
            log(f'Download failed ({error}); retrying in {wait:.3g} s '
                f'({attempt}/{retries})', logger)
            time.sleep(wait)
        try:
            _fetch(url, part, timeout, progress_bar)
            os.replace(part, dest)
            return dest
        except urllib.error.HTTPError as e:
            error = f'HTTP {e.code} {e.reason}'
            if e.code < 500 and e.code not in (408, 429):
                break
        except (OSError, http.client.HTTPException) as e:
            error = str(getattr(e, 'reason', None) or e) or type(e).__name__
    part.unlink(missing_ok=True)
    out = '' if hint_out_dir is None else f' --out {hint_out_dir}'
    raise PreparationError(
        f'could not download {url}: {error}. Download it by hand (e.g. in a '
        f'browser) and pass the file: python tools/prepare_flowers.py '
        f'/path/to/{name}{out}')


def _fetch(url: str, part: Path, timeout: float, progress_bar: bool) -> None:
    """Append to ``part`` what it lacks of ``url``."""
    have = part.stat().st_size if part.is_file() else 0
    headers = {'User-Agent': 'flower-mm/prepare_flowers'}
    if have:
        headers['Range'] = f'bytes={have}-'
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if response.status != 206:  # the whole file: start over
            have = 0
        length = response.headers.get('Content-Length', '')
        left = int(length) if length.isdigit() else None
        chunks = iter(lambda: response.read(CHUNK), b'')
        received = 0
        with open(part, 'ab' if have else 'wb') as f:
            for chunk in progress(chunks, progress_bar and bool(left),
                                  f'Downloading {part.name[:-5]}',
                                  left and -(-left // CHUNK)):
                received += f.write(chunk)
    if left is not None and received != left:
        raise ConnectionError(f'connection closed after {have + received} '
                              f'of {have + left} bytes')
