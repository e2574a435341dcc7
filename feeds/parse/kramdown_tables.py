"""kramdown's tables where GFM sees none: in kramdown a block whose lines each hold a
``|`` (outside code, not escaped) is a table even without a ``|---|`` line under its
first row ('Home | News', a caption 'Photo | Agency'): every row a body row, as
kramdown's table parser writes it. GFM's tables (a header and its ``|---|`` line) stay
markdown-it's; a table line in the middle of a paragraph stays text, as in kramdown.

Only the plain form is read here: a block with a separator (``|---|`` after the first
rows, ``|===|``) that is not GFM's is left as it was (README: known differences).
"""

from __future__ import annotations

import re

from markdown_it.rules_block import StateBlock

_CODE = re.compile(r"(`+)(.+?)\1")
_PIPE = re.compile(r"(?:^|[^\\])\|")
_SEPARATOR = re.compile(r"^[+|: \t=-]*[-=][+|: \t=-]*$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_BOUNDARY = re.compile(r"^[ ]{0,3}(?:#|(?:[-*_][ \t]*){3,}$)")
"""What ends a table besides a blank line: an ATX header, a horizontal rule."""
MAX_ROWS = 10_000


def _line(state: StateBlock, line: int) -> str:
    return state.src[state.bMarks[line] + state.tShift[line]:state.eMarks[line]]


def _table_line(text: str) -> bool:
    """kramdown's TABLE_LINE, with its later rule that the pipe is outside code."""
    return "|" in text and _PIPE.search(_CODE.sub("", text)) is not None


def _cells(text: str) -> list[str]:
    """A row's cells: split at unescaped pipes outside code spans; an empty first cell
    (a leading pipe) and an empty last one dropped."""
    spans: list[str] = []

    def hide(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return f"\x00{len(spans) - 1}\x00"

    hidden = _CODE.sub(hide, text)
    cells = [re.sub(r"\x00(\d+)\x00", lambda m: spans[int(m.group(1))], part)
             .replace("\\|", "|").strip() for part in _CELL_SPLIT.split(hidden)]
    if text.lstrip().startswith("|") and cells and not cells[0]:
        cells.pop(0)
    if cells and not cells[-1]:
        cells.pop()
    return cells


def kramdown_table(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """The block rule (last before ``paragraph``, so lists, quotes and GFM's tables
    come first; it interrupts no paragraph)."""
    if state.is_code_block(start) or not _table_line(_line(state, start)):
        return False
    line = start
    while line < end and line - start < MAX_ROWS:
        text = _line(state, line)
        if not text.strip() or state.sCount[line] < state.blkIndent:
            break
        if not _table_line(text) or _SEPARATOR.match(text.strip()):
            return False  # text after the rows, or a separator: not this plain form
        line += 1
    if line < end and _line(state, line).strip() and not _BOUNDARY.match(_line(state, line)):
        return False  # kramdown: a table ends at a block boundary
    if silent:
        return True
    rows = [_cells(_line(state, n)) for n in range(start, line)]
    columns = max(len(row) for row in rows)
    state.push("table_open", "table", 1).map = [start, line]
    state.push("tbody_open", "tbody", 1)
    for n, row in enumerate(rows, start):
        state.push("tr_open", "tr", 1).map = [n, n + 1]
        for i in range(columns):
            state.push("td_open", "td", 1)
            inline = state.push("inline", "", 0)
            inline.content = row[i] if i < len(row) else ""
            inline.map = [n, n + 1]
            inline.children = []
            state.push("td_close", "td", -1)
        state.push("tr_close", "tr", -1)
    state.push("tbody_close", "tbody", -1)
    state.push("table_close", "table", -1)
    state.line = line
    return True
