"""What a design adds to the report beyond the common tables and plots, and the plain
markdown table both use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ablate.formats import significant
from ablate.report._text import md_text


@dataclass(frozen=True)
class Part:
    files: list[Path]  # written into the results folder (tables, plots)
    sections: list[str]  # markdown lines, placed after "what was run"


def markdown_rows(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """A plain markdown table of `columns` (those present), floats to 4 significant digits;
    every other value is text (`md_text`: an error string's line breaks and markup are not
    the table's)."""
    cols = [c for c in columns if c in frame.columns]
    lines = ["| " + " | ".join(map(md_text, cols)) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, float):
                cells.append(significant(v, 4))
            else:
                cells.append(md_text(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
