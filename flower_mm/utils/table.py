"""Plain-text tables for logs and terminals (no extra dependency)."""
from typing import Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence],
                 align_right_from: int = 1) -> str:
    """Format ``rows`` under ``headers`` as an aligned text table.

    Columns from index ``align_right_from`` on are right-aligned (numbers);
    the ones before are left-aligned (names, paths).
    """
    cells = [[str(h) for h in headers]] + [[str(c) for c in row]
                                           for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return '  '.join(
            cell.rjust(w) if i >= align_right_from else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths))).rstrip()

    rule = '  '.join('-' * w for w in widths)
    return '\n'.join([line(cells[0]), rule] + [line(r) for r in cells[1:]])
