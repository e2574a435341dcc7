"""kramdown's smart quotes. kramdown does not pair quotes, as markdown-it's typographer
does: each quote is decided where it stands, by the first of an ordered list of rules
that matches there (the char before it, the chars after it), so a quote without a partner
is still curled: ``5'10"`` gets a right single and a right double quote, ``'Twas`` a left
single one, a lone ``"`` a left double one.

The rules are kramdown's (its smart_quotes span parser), rewritten for Python's ``re``
with Ruby's classes: ``\\w``, ``\\d`` and ``\\s`` are ASCII in Ruby while ``\\b`` knows
Unicode letters. kramdown reads a paragraph with one scanner that restarts after each
element (emphasis, code, a link, an escape, a dash...): a quote right after one has no
char before it. Here a *run* is the text between two such elements, and the rules may
look past its end into the markup that follows, as kramdown's scanner does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it.rules_core import StateCore
from markdown_it.token import Token

_W = "[A-Za-z0-9_]"
_S = "[ \t\r\n\f\v]"
_NS = "[^ \t\r\n\f\v]"
_PUNCT = r"""[!"#$%'()*+,\-./:;<=>?@\[\\\]^_`{|}~]"""
_CLOSE = r"[^ \\\t\r\n\[{(-]"

# (rule, what it writes): an int is that group's text as it is; 'open1' / 'close1' the
# opening / closing form of the quote in group 1 ('open2' / 'close2': group 2); 'ld',
# 'rd', 'ls', 'rs' one quote.
_RULES: tuple[tuple[re.Pattern[str], tuple[int | str, ...]], ...] = tuple(
    (re.compile(pattern, re.MULTILINE | re.DOTALL), writes) for pattern, writes in (
        (r"""("|')(?=[_*]{1,2}""" + _NS + ")", ("open1",)),
        (r"""("|')(?=""" + _PUNCT + r"""(?!\.\.)\B)""", ("close1",)),
        # "'Quoted' words in a larger quote."
        ("(" + _S + "?)\"'(?=" + _W + ")", (1, "ld", "ls")),
        ("(" + _S + "?)'\"(?=" + _W + ")", (1, "ls", "ld")),
        # Decades: the '80s.
        ("(" + _S + "?)'(?=[0-9][0-9]s)", (1, "rs")),
        ("(" + _S + ")('|\")(?=" + _W + ")", (1, "open2")),
        ("(" + _CLOSE + ")('|\")", (1, "close2")),
        # <i>Custer</i>'s Last Stand.
        (r"""("|')(?=""" + _S + r"""|s\b|$)""", ("close1",)),
        # Any other single or double quote opens.
        ("(.?)'", (1, "ls")),
        ('(.?)"', (1, "ld")),
    ))
_START = re.compile(r"""[^\\]?["']""")
_SYMS = re.compile(r"---|--|\.\.\.|<< |<<| >>|>>")
"""kramdown's typographic symbols: elements, so a quote after one has no char before."""
_TEXT = frozenset({"text", "softbreak"})


def smart_run(run: str, after: str, quotes: str) -> str:
    """One run of text with its quotes made typographic. ``after`` is what follows the
    run (markup, more text), which the rules may look at; ``quotes`` the four
    characters: left and right double, left and right single (markdown-it's order)."""
    if '"' not in run and "'" not in run:
        return run
    one = dict(zip(("ld", "rd", "ls", "rs"), quotes, strict=True))
    out: list[str] = []
    pieces = _SYMS.split(run)
    syms = _SYMS.findall(run)
    for n, piece in enumerate(pieces):
        rest = "".join(s + p for s, p in zip(syms[n:], pieces[n + 1:], strict=True)) + after
        out.append(_smart_piece(piece, rest, one))
        if n < len(syms):
            out.append(syms[n])
    return "".join(out)


def _smart_piece(piece: str, after: str, one: dict[str, str]) -> str:
    text = piece + after
    out: list[str] = []
    pos = 0
    while True:
        start = _START.search(piece, pos)
        if start is None:
            break
        out.append(piece[pos:start.start()])
        for rule, writes in _RULES:  # noqa: B007 - the rule found, and what it writes
            m = rule.match(text, start.start())
            if m is not None and m.end() <= len(piece):
                break
        else:  # cannot happen: the last two rules match any quote
            out.append(piece[start.start():start.end()])
            pos = start.end()
            continue
        for what in writes:
            if isinstance(what, int):
                out.append(m.group(what))
            elif what in one:
                out.append(one[what])
            else:
                quote = m.group(int(what[-1]))
                kind = ("l" if what.startswith("open") else "r") + \
                    ("d" if quote == '"' else "s")
                out.append(one[kind])
        pos = m.end()
    out.append(piece[pos:])
    return "".join(out)


def _source(token: Token) -> str:
    """What a token stood for in the source, for the rules' look ahead."""
    if token.type == "text":
        return token.content
    if token.type in {"softbreak", "hardbreak"}:
        return "\n"
    if token.type == "code_inline":
        return token.markup + token.content + token.markup
    if token.type in {"html_inline", "text_special"}:
        return token.markup or token.content
    if token.type == "link_close":
        return "]"
    return token.markup or ("[" if token.type == "link_open" else "")


def _smart_children(children: Sequence[Token], quotes: str) -> None:
    i = 0
    while i < len(children):
        if children[i].type not in _TEXT:
            i += 1
            continue
        j = i
        while j < len(children) and children[j].type in _TEXT:
            j += 1
        group = children[i:j]
        texts = [c.content if c.type == "text" else "\n" for c in group]
        run = "".join(texts)
        if '"' not in run and "'" not in run:  # nothing to curl: no look ahead to make
            i = j
            continue
        new = smart_run(run, "".join(_source(c) for c in children[j:]), quotes)
        at = 0
        for child, text in zip(group, texts, strict=True):
            if child.type == "text":  # one quote for one: the lengths stay
                child.content = new[at:at + len(text)]
            at += len(text)
        i = j


def smart_quotes(state: StateCore) -> None:
    """The core rule: every inline run's quotes, as kramdown makes them."""
    quotes = str(state.md.options["quotes"])
    for token in state.tokens:
        if token.type == "inline" and token.children:
            _smart_children(token.children, quotes)
