"""kramdown's HTML blocks: a line that starts with a tag that is not a span element
(``<div>``, ``<figure>``, ``<iframe>``...) starts an HTML block that ends with the
element's own closing tag, where CommonMark's runs on to the next blank line. So the text
right after an embed (``<figure>...</figure>`` then a caption line, or text after the
closing tag on its line) is Markdown again, as Jekyll renders it, instead of raw text.

An element whose closing tag is not found is left to markdown-it (kramdown closes it at
the end of the document; README: known differences).
"""

from __future__ import annotations

import re
from functools import lru_cache

from markdown_it.rules_block import StateBlock

# kramdown's HTML_SPAN_ELEMENTS: a line starting with one of them is a paragraph.
_SPAN = frozenset({
    "a", "abbr", "acronym", "b", "big", "bdo", "br", "button", "cite", "code", "del", "dfn",
    "em", "i", "img", "input", "ins", "kbd", "label", "mark", "option", "q", "rb", "rbc", "rp",
    "rt", "rtc", "ruby", "samp", "select", "small", "span", "strong", "sub", "sup", "tt", "u",
    "var",
})
# kramdown's HTML_ELEMENTS_WITHOUT_BODY.
_VOID = frozenset({
    "area", "base", "br", "col", "command", "embed", "hr", "img", "input", "keygen", "link",
    "meta", "param", "source", "track", "wbr",
})
_START = re.compile(r"[ ]{0,3}<([A-Za-z][\w:.-]*)(?=[\s/>])[^>]*?(/?)>")
MAX_SCAN = 4_000_000
"""Characters one document's HTML blocks may look through for their closing tags, in
all: many unclosed tags cannot make the work quadratic (past it, CommonMark's blocks)."""


@lru_cache(maxsize=64)
def _tags_of(name: str) -> re.Pattern[str]:
    """The opening and closing tags of element ``name`` (compiled once a name)."""
    return re.compile(rf"<(/?){re.escape(name)}(?=[\s/>])[^>]*?(/?)>", re.IGNORECASE)


def _element_end(src: str, start: int, name: str, budget: list[int]) -> int | None:
    """Where the element opened at ``start`` ends (after its closing tag), counting
    nested elements of the same name; None when it is not closed (or the budget of
    characters to look through is spent)."""
    tags = _tags_of(name)
    depth = 0
    stop = min(len(src), start + max(budget[0], 0))
    for match in tags.finditer(src, start, stop):
        if match.group(1):
            depth -= 1
        elif not match.group(2):
            depth += 1
        if depth == 0:
            budget[0] -= match.end() - start
            return match.end()
    budget[0] -= stop - start
    return None


def kramdown_html_block(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """The block rule (before markdown-it's ``html_block``)."""
    if state.is_code_block(start):
        return False
    begin = state.bMarks[start]
    found = _START.match(state.src, begin, state.eMarks[start])
    if found is None or found.group(1).lower() in _SPAN:
        return False
    name = found.group(1).lower()
    if name in _VOID or found.group(2):
        close: int | None = found.end()
    else:
        budget = state.env.setdefault("kramdown_html_budget", [MAX_SCAN])
        close = _element_end(state.src, found.start(1) - 1, name, budget)
    if close is None:
        return False
    line = start
    while line < end and state.eMarks[line] < close:
        line += 1
    if line >= end:
        return False
    if silent:
        return True
    token = state.push("html_block", "", 0)
    token.map = [start, line + 1]
    # The block's lines without what holds them (a quote's '>', a list's indent).
    last = state.src[state.bMarks[line] + state.tShift[line]:close]
    head = state.getLines(start, line, state.blkIndent, True) if line > start else ""
    token.content = head + (last if line > start else state.src[begin:close].lstrip(" ")) + "\n"
    rest = state.src[close:state.eMarks[line]]
    state.line = line + 1
    if rest.strip():  # text after the closing tag on its line: a block of its own
        state.md.block.parse(rest.strip(), state.md, state.env, state.tokens)
    return True
