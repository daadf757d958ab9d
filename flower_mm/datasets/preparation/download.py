"""One download helper: a temporary name, resume, retries, progress."""
import http.client
import os
import posixpath
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

from .common import CHUNK, Logger, PreparationError, log, progress


class _ShortRead(Exception):
    pass


def download_file(url: str,
                  dest_dir,
                  retries: int = 3,
                  backoff: float = 1.0,
                  timeout: float = 60.0,
                  progress_bar: bool = True,
                  logger: Logger = None,
                  hint_out_dir: Optional[Path] = None) -> Path:
    """Download ``url`` to ``dest_dir/<name>`` and return its path.

    The bytes go to ``<name>.part``, renamed once complete, so an existing
    ``<name>`` is a finished download and is reused. Transient failures
    (connection errors, HTTP 5xx/408/429, a connection closed early) are
    retried ``retries`` times after ``backoff``, 2 * ``backoff``... seconds;
    a retry asks for the missing bytes only (HTTP Range) and starts over
    when the server sends the whole file.

    Raises:
        PreparationError: naming the URL and how to download it by hand.
    """
    name = posixpath.basename(urllib.parse.urlparse(url).path) or 'download'
    dest = Path(dest_dir) / name
    if dest.is_file():
        log(f'Using the cached download {dest}', logger)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(name + '.part')
    error = ''
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
            if not (e.code >= 500 or e.code in (408, 429)):
                break
        except (OSError, http.client.HTTPException, _ShortRead) as e:
            reason = getattr(e, 'reason', None) or e
            error = str(reason) or type(e).__name__
    part.unlink(missing_ok=True)
    out = f' --out {hint_out_dir}' if hint_out_dir is not None else ''
    raise PreparationError(
        f'could not download {url}: {error}. Download it by hand (e.g. in a '
        'browser) and pass the file: python tools/prepare_flowers.py '
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
        length = response.headers.get('Content-Length')
        total = have + int(length) if length and length.isdigit() else None
        received = have
        title = f'Downloading {part.name[:-5]}'
        steps = -(-total // CHUNK) if total else None
        with open(part, 'ab' if have else 'wb') as f, progress(
                progress_bar and bool(steps), title, steps) as bar:
            for chunk in iter(lambda: response.read(CHUNK), b''):
                f.write(chunk)
                received += len(chunk)
                bar.advance()
    if total is not None and received != total:
        raise _ShortRead(f'connection closed after {received} of {total} '
                         'bytes')
