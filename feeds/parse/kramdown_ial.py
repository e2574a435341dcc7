"""kramdown's inline attribute lists and abbreviations, as markdown-it core rules.

- A block IAL, ``{: .lead #intro key="v"}`` on the line after a block (or on a line of its
  own), sets that block's attributes; after a list it is the list's (``{:toc}`` marks the
  list that becomes the table of contents).
- A span IAL right after an element, ``*word*{: .hl}``, sets that element's.
- ``{:name: .cls}`` on a line of its own defines attributes that ``{: name}`` refers to.
- ``*[HTML]: Hyper Text Markup Language`` defines an abbreviation: the line is dropped and
  each whole-word use is written ``<abbr title="...">HTML</abbr>``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from markdown_it.rules_core import StateCore
from markdown_it.token import Token

_IAL = re.compile(r"\{:(?!:)\s*([^}]*)\}")
_IAL_LINE = re.compile(r"^\{:(?!:)\s*([^}]*)\}$")
_IAL_PART = re.compile(r"""([.#])([\w:-]+)|([\w:-]+)=(?:"([^"]*)"|'([^']*)'|(\S+))|([\w-]+)""")
_HEADER_ID = re.compile(r"\s*\{#([\w:-]+)\}\s*$")
_ALD_LINE = re.compile(r"^[ ]{0,3}\{:([\w-]+):[ \t]*([^}\n]*)\}[ \t]*$\n?", re.MULTILINE)
_ABBR_LINE = re.compile(r"^[ ]{0,3}\*\[([^\]\n]+)\]:[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_FENCE = re.compile(r"^[ ]{0,3}(```|~~~)", re.MULTILINE)


def _set_attrs(token: Token, spec: str) -> None:
    for match in _IAL_PART.finditer(spec):
        sign, name, key, dq, sq, bare, ref = match.groups()
        if sign == ".":
            classes = str(token.attrGet("class") or "").split()
            token.attrSet("class", " ".join([*classes, name]))
        elif sign == "#":
            token.attrSet("id", name)
        elif key:
            token.attrSet(key, next(v for v in (dq, sq, bare) if v is not None))
        elif ref == "toc":
            token.meta["toc"] = True


def _opener(tokens: Sequence[Token], close: int) -> int:
    """Index of the token that opens the block closed at ``close``."""
    depth = 0
    for i in range(close, -1, -1):
        depth += tokens[i].nesting
        if depth == 0:
            return i
    return close


def _enclosing_list(tokens: Sequence[Token], para_open: int) -> int | None:
    """The list or quote that ends with this paragraph (a lazy IAL line is its)."""
    close = para_open + 2
    if close + 1 < len(tokens) and tokens[close + 1].type == "blockquote_close":
        return _opener(tokens, close + 1)
    if close + 2 < len(tokens) and tokens[close + 1].type == "list_item_close" and \
            tokens[close + 2].type in {"bullet_list_close", "ordered_list_close"}:
        return _opener(tokens, close + 2)
    return None


def _leading_ial(tokens: list[Token], i: int) -> None:
    """``{: .x}`` on the line before a paragraph's text: the paragraph's."""
    children = tokens[i].children or []
    if len(children) > 2 and children[0].type == "text" and children[1].type == "softbreak":
        line = _IAL_LINE.match(children[0].content.strip())
        if line and tokens[i - 1].type == "paragraph_open":
            _set_attrs(tokens[i - 1], line.group(1))
            del children[:2]


def _header_id(tokens: list[Token], i: int) -> None:
    """kramdown's ``## Head {#id}``."""
    children = tokens[i].children or []
    if tokens[i - 1].type == "heading_open" and children and children[-1].type == "text":
        match = _HEADER_ID.search(children[-1].content)
        if match:
            tokens[i - 1].attrSet("id", match.group(1))
            children[-1].content = children[-1].content[:match.start()]


def _table_row_ial(tokens: list[Token], i: int) -> bool:
    """A ``{: .x}`` line under a table is read as its last row: it is the table's."""
    line = _IAL_LINE.match((tokens[i].content or "").strip())
    if not line or tokens[i - 1].type != "td_open" or tokens[i - 2].type != "tr_open":
        return False
    row_end = next(n for n in range(i, len(tokens)) if tokens[n].type == "tr_close")
    if any(t.type == "inline" and t.content.strip() for t in tokens[i + 1:row_end]):
        return False
    close = next(n for n in range(row_end, len(tokens)) if tokens[n].type == "table_close")
    _set_attrs(tokens[_opener(tokens, close)], line.group(1))
    del tokens[i - 2:row_end + 1]
    return True


def _block_ials(tokens: list[Token]) -> None:
    i = 0
    while i < len(tokens):
        token = tokens[i]
        children = token.children or []
        if token.type == "inline" and i and _table_row_ial(tokens, i):
            continue
        if token.type == "inline" and i:
            _leading_ial(tokens, i)
            _header_id(tokens, i)
        if token.type == "inline" and children and children[-1].type == "text":
            line = _IAL_LINE.match(children[-1].content.strip())
            whole = len(children) == 1
            if line and whole and i >= 2 and tokens[i - 2].nesting == -1:
                _set_attrs(tokens[_opener(tokens, i - 2)], line.group(1))
                del tokens[i - 1:i + 2]
                i -= 1
                continue
            if line and not whole and children[-2].type == "softbreak":
                target = _enclosing_list(tokens, i - 1)
                _set_attrs(tokens[i - 1 if target is None else target], line.group(1))
                del children[-2:]
        i += 1


def _span_ials(children: list[Token]) -> None:
    for n in range(len(children) - 1, 0, -1):
        child = children[n]
        if child.type != "text" or not child.content.startswith("{:"):
            continue
        match = _IAL.match(child.content)
        before = children[n - 1]
        if match is None or not (before.nesting == -1
                                 or before.type in {"code_inline", "image"}):
            continue
        target = before if before.nesting == 0 else children[_opener(children, n - 1)]
        _set_attrs(target, match.group(1))
        child.content = child.content[match.end():]


def apply_ials(state: StateCore) -> None:
    for token in state.tokens:
        if token.type == "inline" and token.children:
            _span_ials(token.children)
    _block_ials(state.tokens)


def expand_alds(text: str) -> str:
    """kramdown's attribute list definitions, ``{:name: .cls key="v"}`` on a line of their
    own: the lines are dropped and each ``{: name}`` reference gets what they define."""
    if "{:" not in text:
        return text
    found = {m.group(1): m.group(2) for m in _ALD_LINE.finditer(text)}
    if not found:
        return text
    text = _ALD_LINE.sub("", text)

    def expand(match: re.Match[str]) -> str:
        words = [found.get(word, word) for word in match.group(1).split()]
        return "{: " + " ".join(words) + "}"

    return _IAL.sub(expand, text)


def strip_abbreviations(text: str) -> tuple[str, dict[str, str]]:
    """The text without its abbreviation definitions, and the definitions (outside code
    fences)."""
    if "*[" not in text:
        return text, {}
    found: dict[str, str] = {}
    parts = _FENCE.split(text)
    # Split keeps the fence markers: even indexes are outside fences, in turn.
    inside = False
    out = []
    for n, part in enumerate(parts):
        if n % 2 == 1:
            inside = not inside
            out.append(part)
            continue
        if not inside:
            for match in _ABBR_LINE.finditer(part):
                found[match.group(1)] = match.group(2)
            part = _ABBR_LINE.sub("", part)
        out.append(part)
    return "".join(out), found


def abbreviations(state: StateCore) -> None:
    found: dict[str, str] = state.env.get("abbreviations") or {}
    if not found:
        return
    pattern = re.compile(r"(?<!\w)(" + "|".join(
        re.escape(a) for a in sorted(found, key=len, reverse=True)) + r")(?!\w)")
    for token in state.tokens:
        if token.type != "inline" or not token.children:
            continue
        new: list[Token] = []
        for child in token.children:
            if child.type != "text" or not pattern.search(child.content):
                new.append(child)
                continue
            pos = 0
            for match in pattern.finditer(child.content):
                new.append(_text(child.content[pos:match.start()]))
                abbr = Token("html_inline", "", 0)
                title = html.escape(found[match.group(1)])
                abbr.content = (f'<abbr title="{title}">'
                                f"{html.escape(match.group(1), quote=False)}</abbr>")
                new.append(abbr)
                pos = match.end()
            new.append(_text(child.content[pos:]))
        token.children = new


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token
