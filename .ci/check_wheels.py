"""Would the set-up line install on other Pythons? Ask pip's resolver.

    python .ci/check_wheels.py 3.12 3.13

For each version, pip resolves requirements.txt (every pin and what it
pulls in) for CPython of that version on x86-64 Linux (glibc 2.17 to 2.39:
Ubuntu 24.04, Debian 13) from wheels alone, downloading nothing but what it
needs to read their metadata. A pin released as source only (grad-cam) is
built here once: a pure-Python wheel serves every version, a compiled one
does not. Exit status 1, with one ``error:`` line per version, when a pin
has no wheel for it. Needs PyPI; CI runs it (.ci/run).
"""
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parents[1] / 'requirements.txt'
PLATFORMS = ['manylinux2014_x86_64'] + [
    f'manylinux_2_{minor}_x86_64' for minor in range(17, 40)
]
MISSING = re.compile(r'No matching distribution found for ([^;\s]+)')


def pip(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'pip', *args],
                          capture_output=True, text=True)


def pins(folder: Path) -> Path:
    """requirements.txt without the project itself (``-e .``)."""
    lines = [line for line in REQUIREMENTS.read_text().splitlines()
             if not line.lstrip().startswith('-e')]
    path = folder / 'pins.txt'
    path.write_text('\n'.join(lines) + '\n')
    return path


def resolve(version: str, requirements: Path, wheels: Path,
            folder: Path) -> subprocess.CompletedProcess:
    platforms = [arg for p in PLATFORMS for arg in ('--platform', p)]
    return pip('install', '--dry-run', '--ignore-installed', '--quiet',
               '--only-binary=:all:', '--find-links', str(wheels),
               '--python-version', version, '--implementation', 'cp',
               '--abi', 'cp' + version.replace('.', ''), *platforms,
               '--target', str(folder / 'target'), '-r', str(requirements))


def build_pure_wheel(requirement: str, wheels: Path) -> str:
    """Build ``requirement`` from source into ``wheels``; '' if the wheel
    is pure Python (fit for any version), else why it is not."""
    built = pip('wheel', '--no-deps', '--quiet', '-w', str(wheels),
                requirement)
    if built.returncode != 0:
        return f'no wheel, and its source does not build: {built.stderr}'
    name = re.split(r'[=<>!~]', requirement)[0].replace('-', '_').lower()
    made = [w.name for w in wheels.glob('*.whl') if w.name.lower().startswith(
        name + '-')]
    if not any(w.endswith('-none-any.whl') for w in made):
        return f'the wheel pip makes of it here is {", ".join(made)}, not ' \
            'pure Python'
    return ''


def check(version: str, folder: Path) -> str:
    """'' when requirements.txt resolves to wheels for ``version``, else
    what is missing."""
    requirements, wheels = pins(folder), folder / 'wheels'
    wheels.mkdir(exist_ok=True)
    built = set()
    while True:
        proc = resolve(version, requirements, wheels, folder)
        if proc.returncode == 0:
            return ''
        missing = MISSING.search(proc.stderr)
        if missing is None:
            return proc.stderr.strip().splitlines()[-1]
        requirement = missing.group(1)
        if requirement in built:
            return f'{requirement} has no wheel for Python {version}'
        built.add(requirement)
        why = build_pure_wheel(requirement, wheels)
        if why:
            return f'{requirement} has no wheel for Python {version}: {why}'


def main(versions) -> int:
    failed = 0
    with tempfile.TemporaryDirectory(prefix='check-wheels-') as tmp:
        for version in versions:
            problem = check(version, Path(tmp))
            if problem:
                failed += 1
                print(f'error: requirements.txt does not install on Python '
                      f'{version}: {problem}. Pin a version with a wheel for '
                      f'{version} (or an environment marker where no one '
                      'version serves all).', file=sys.stderr)
            else:
                print(f'Python {version}: every pin has a wheel')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:] or ['3.12', '3.13']))
