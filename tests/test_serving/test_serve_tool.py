"""tools/serve.py as a user runs it, and its page in a real browser: Debian's
Chromium driven by Playwright.

Set FLOWER_MM_SCREENSHOT=docs/_static/serve_page.png to also write the
screenshots the README shows (serve_page.png, and serve_page_cam.png with the
heat maps on, next to it).
"""
import http.client
import os
import re
import socket
import subprocess
import time
import urllib.request

import httpx
import pytest
from conftest import REPO_ROOT, load_tool, start_tool
from playwright.sync_api import expect, sync_playwright

from flower_mm.datasets import FLOWER_CLASSES

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = [
    '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run', '--disable-sync'
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def server(learned_model, tmp_path_factory):
    """tools/serve.py on a free port of 127.0.0.1, stopped afterwards."""
    port = free_port()
    log = tmp_path_factory.mktemp('serve') / 'serve.log'
    proc = start_tool([
        REPO_ROOT / 'tools' / 'serve.py', learned_model.config,
        learned_model.checkpoint, '--port', port, '--device', 'cpu',
        # eager: this module tests the API and the page, not the backends
        # (tests/test_serving/test_serving_backends.py)
        '--backend', 'pytorch', '--cfg-options', *learned_model.cfg_options
    ], cwd=log.parent, log_path=log)
    url = f'http://127.0.0.1:{port}'
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f'tools/serve.py exited {proc.returncode}:\n'
                            f'{log.read_text()[-5000:]}')
            try:
                with urllib.request.urlopen(url + '/health', timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, 'the server never came up'
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def api_predictions(url, paths):
    files = [('files', (p.name, p.read_bytes(), 'image/jpeg')) for p in paths]
    response = httpx.post(url + '/predict', files=files, timeout=60)
    response.raise_for_status()
    return {r['name']: r for r in response.json()['results']}


def classify_in_page(page, url, paths):
    """Open the page, choose ``paths`` in its file input and wait for every
    photo's bars. Returns ``{name: [(label, percent, bar width), ...]}``."""
    page.goto(url)
    expect(page.locator('#model')).to_contain_text(re.compile(r'\.pth\b'))
    page.get_by_label('Choose photos').set_input_files(
        [str(p) for p in paths])
    cards = page.locator('.card')
    expect(cards).to_have_count(len(paths))
    expect(page.locator('.card .bar')).to_have_count(5 * len(paths),
                                                     timeout=60_000)
    shown = {}
    for card in cards.all():
        rows = []
        for bar in card.locator('.bar').all():
            pct = bar.locator('.pct').inner_text()
            assert re.fullmatch(r'\d{1,3}\.\d %', pct), pct
            width = bar.locator('.fill').evaluate(
                'e => e.getBoundingClientRect().width / '
                'e.parentElement.getBoundingClientRect().width')
            rows.append((bar.locator('.label').inner_text(),
                         float(pct[:-2]), width))
        time_text = card.locator('.time').inner_text()
        assert re.fullmatch(r'\d+ ms', time_text), time_text
        shown[card.locator('h2').inner_text()] = rows
    return shown


def test_page_in_chromium(server, learned_model, tmp_path):
    photos = learned_model.one_photo_per_class[:2]
    expected = api_predictions(server, photos)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={'width': 1000, 'height': 720})
            shown = classify_in_page(page, server, photos)
            screenshot = tmp_path / 'serve_page.png'
            page.screenshot(path=str(screenshot), full_page=True)
            if os.environ.get('FLOWER_MM_SCREENSHOT'):
                page.screenshot(path=os.environ['FLOWER_MM_SCREENSHOT'],
                                full_page=True)

            assert sorted(shown) == sorted(p.name for p in photos)
            truth = {p.name: p.parent.name for p in photos}
            for name, rows in shown.items():
                labels = [label for label, _, _ in rows]
                assert labels[0] == truth[name]  # a learned model: right
                assert sorted(labels) == sorted(FLOWER_CLASSES)
                assert labels == [
                    p['label'] for p in expected[name]['topk']]
                percents = [pct for _, pct, _ in rows]
                assert sum(percents) == pytest.approx(100, abs=0.3)
                for (_, pct, width), p in zip(rows, expected[name]['topk']):
                    assert pct == pytest.approx(100 * p['score'], abs=0.051)
                    assert width == pytest.approx(p['score'], abs=0.01)
            assert screenshot.stat().st_size > 10_000

            # Keyboard: the controls are reachable with Tab, in order, and
            # work from the keyboard.
            page.evaluate('document.activeElement.blur()')
            focused = []
            for _ in range(4):
                page.keyboard.press('Tab')
                focused.append(page.evaluate('document.activeElement.id'))
            assert focused == ['files', 'topk', 'cam', 'clear']
            show_heat_maps(page, expected)
            page.get_by_label('Show heat map').focus()
            page.keyboard.press('Space')  # off: the photos again
            for card in page.locator('.card').all():
                expect(card.locator('img')).to_have_attribute(
                    'src', re.compile('^blob:'))
            page.get_by_role('button', name='Clear results').focus()
            page.keyboard.press('Enter')
            expect(page.locator('.card')).to_have_count(0)

            # A file that is no photo: its card says why.
            page.get_by_label('Choose photos').set_input_files(
                [{'name': 'notes.txt', 'mimeType': 'text/plain',
                  'buffer': b'no pixels here'}])
            expect(page.locator('.card .error')).to_contain_text(
                '"notes.txt": not an image')

            # On a phone: nothing wider than the screen.
            page.set_viewport_size({'width': 360, 'height': 740})
            assert page.evaluate(
                'document.documentElement.scrollWidth') <= 360
        finally:
            browser.close()


def show_heat_maps(page, expected):
    """Switch "Show heat map" on from the keyboard: each card's photo turns
    into the heat map /cam made for its predicted class."""
    toggle = page.get_by_label('Show heat map')
    expect(toggle).to_be_visible()
    toggle.focus()
    page.keyboard.press('Space')
    expect(toggle).to_be_checked()
    for card in page.locator('.card').all():
        img = card.locator('img')
        expect(img).to_have_attribute('src', re.compile('^data:image/png;'),
                                      timeout=30_000)
        name = card.locator('h2').inner_text()
        top1 = expected[name]['topk'][0]['label']
        assert img.get_attribute('alt') == (
            f'{name}: heat map of what the model looked at for "{top1}"')
        assert img.evaluate('e => e.complete && e.naturalWidth') > 0
    if os.environ.get('FLOWER_MM_SCREENSHOT'):
        shot = os.environ['FLOWER_MM_SCREENSHOT']
        page.screenshot(path=shot.replace('.png', '_cam.png'),
                        full_page=True)


def test_server_refuses_a_large_body_before_reading_it(server):
    """A declared 10 GB upload is answered 413 while the client has sent
    only its headers."""
    host, port = server.rsplit('/', 1)[1].split(':')
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    conn.putrequest('POST', '/predict')
    conn.putheader('Content-Type', 'multipart/form-data; boundary=x')
    conn.putheader('Content-Length', str(10 * 2**30))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 413
    assert b'larger than 20 MB' in response.read()
    conn.close()


def test_serve_binds_localhost_by_default():
    args = load_tool('serve').get_args_parser().parse_args(['a.py', 'b.pth'])
    assert (args.host, args.port, args.backend) == ('127.0.0.1', 8000,
                                                     'auto')
    assert (args.max_batch, args.max_upload_mb) == (16, 20)



def test_load_benchmark_counts_answers_and_errors(server, learned_model):
    """benchmarks/serve_load.py's client loop against the running server:
    answered photos count as images, unreadable ones as errors."""
    import serve_load  # benchmarks/ is on the tests' path
    photos = [(p.name, p.read_bytes()) for p in learned_model.one_photo_per_class]
    good = serve_load.run_clients(server, photos, clients=2, duration=3.,
                                  files_per_request=2, warmup_s=0.)
    assert good['requests'] > 0 and good['errors'] == 0
    assert good['images_per_s'] == pytest.approx(2 * good['requests_per_s'])
    assert 0 < good['p50_ms'] <= good['p95_ms']
    bad = serve_load.run_clients(server, [('x.jpg', b'no photo')], clients=1,
                                 duration=1., files_per_request=1,
                                 warmup_s=0.)
    assert bad['requests'] > 0 and bad['errors'] == bad['requests']
    assert bad['images_per_s'] == 0
    assert '"x.jpg": not an image' in bad['first_errors'][0]
