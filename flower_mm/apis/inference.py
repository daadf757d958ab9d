"""What the predictors read and write: image inputs (files, folders,
globs) and predictions as a table, CSV or JSON."""
import csv
import glob
import json
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

from flower_mm.datasets.categories import IMG_EXTENSIONS

OUTPUT_FORMATS = ('.csv', '.json')


def collect_image_inputs(
        inputs: Sequence[str]) -> List[Tuple[str, Optional[str]]]:
    """Expand files, folders (recursively) and glob patterns.

    Returns:
        list[tuple]: ``(path, error)`` per image in input order, without
        duplicates. ``error`` is None, or says why an input names no image
        (missing file, empty folder, pattern matching nothing); such inputs
        stay in the list so that they are reported with the rest.
    """
    items, seen = [], set()

    def add(path, error=None):
        if path not in seen:
            seen.add(path)
            items.append((path, error))

    for inp in inputs:
        if osp.isdir(inp):
            found = _images_under(inp)
            if not found:
                add(inp, 'folder holds no images (looked for '
                    f'{", ".join(IMG_EXTENSIONS)}, recursively)')
            for path in found:
                add(path)
        elif osp.isfile(inp):
            add(inp)  # named explicitly: tried whatever its extension
        elif glob.has_magic(inp):
            matches = sorted(glob.glob(inp, recursive=True))
            found = []
            for match in matches:
                if osp.isdir(match):
                    found += _images_under(match)
                elif match.lower().endswith(IMG_EXTENSIONS):
                    found.append(match)
            if not found:
                add(inp, 'pattern matches no image file')
            for path in found:
                add(path)
        else:
            add(inp, 'file does not exist')
    return items


def _images_under(folder: str) -> List[str]:
    paths = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs.sort()
        paths += [
            osp.join(root, n) for n in sorted(names)
            if n.lower().endswith(IMG_EXTENSIONS)
        ]
    return paths


def predictions_table(results: Sequence[dict],
                      topk: int,
                      score_digits: int = 4) -> Tuple[list, list]:
    """Headers and rows: path, then class/score per rank, then error."""
    headers = ['path']
    for k in range(1, topk + 1):
        headers += [f'top{k}_class', f'top{k}_score']
    headers.append('error')
    rows = []
    for r in results:
        row = [r['path']]
        for k in range(topk):
            if k < len(r['topk']):
                pred = r['topk'][k]
                row += [pred['class'], f'{pred["score"]:.{score_digits}f}']
            else:
                row += ['', '']
        row.append(r['error'] or '')
        rows.append(row)
    return headers, rows


def write_predictions(results: Sequence[dict], out_file: str,
                      topk: int) -> str:
    """Write predictions as CSV (one row per image) or JSON (a list)."""
    ext = osp.splitext(out_file)[1].lower()
    if ext not in OUTPUT_FORMATS:
        raise ValueError(f'Output file "{out_file}" must end in .csv or '
                         '.json.')
    out_dir = osp.dirname(out_file)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    if ext == '.csv':
        headers, rows = predictions_table(results, topk, score_digits=6)
        with open(out_file, 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(headers)
            writer.writerows(rows)
    else:
        with open(out_file, 'w') as f:
            json.dump(list(results), f, indent=2)
            f.write('\n')
    return out_file
