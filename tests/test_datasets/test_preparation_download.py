"""An interrupted download resumes where it stopped (HTTP Range)."""
import http.server
import threading

import pytest

from flower_mm.datasets.preparation import download_file

DATA = bytes(range(256)) * 64  # 16 KiB


class RangeHandler(http.server.BaseHTTPRequestHandler):
    requests = []  # the Range header of each request ('' for none)

    def do_GET(self):  # noqa: N802
        wanted = self.headers.get('Range', '')
        self.requests.append(wanted)
        start = int(wanted[len('bytes='):-1]) if wanted else 0
        body = DATA[start:]
        self.send_response(206 if start else 200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if len(self.requests) == 1:  # the first connection drops midway
            self.wfile.write(body[:len(body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def range_server(monkeypatch):
    for var in ('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'):
        monkeypatch.delenv(var, raising=False)
    RangeHandler.requests = []
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), RangeHandler)
    thread = threading.Thread(
        target=httpd.serve_forever, args=(0.05, ), daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


def test_interrupted_download_resumes(range_server, tmp_path):
    path = download_file(f'{range_server}/photos.tgz', tmp_path, backoff=0.01,
                         progress_bar=False, logger='silent')
    assert path.read_bytes() == DATA
    # The retry asked for the second half only.
    assert RangeHandler.requests == ['', f'bytes={len(DATA) // 2}-']
    assert not list(tmp_path.glob('*.part'))
