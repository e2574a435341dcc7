"""Titles as jekyll-feed writes them: Jekyll's ``smartify`` (kramdown's SmartyPants),
then the tags stripped and the spaces folded. Pure functions on text."""

from __future__ import annotations

import html
import re
from functools import lru_cache

# --- smartify -------------------------------------------------------------------------
# jekyll-feed runs titles (and the site title) through Jekyll's smartify: kramdown's
# SmartyPants parser, whose rules are ported here in their order (kramdown:
# parser/kramdown/smart_quotes.rb and typographic_symbol.rb), so titles stay identical
# for a site that moves here ("'90s" opens with a right quote, as kramdown writes it).

_SQ_PUNCT = r"""[!"#$%'()*+,\-./:;<=>?@\[\\\]^_`{|}~]"""
_SQ_CLOSE = r"[^ \\\t\r\n\[{(-]"
_QUOTES = {("l", '"'): "\u201c", ("l", "'"): "\u2018", ("r", '"'): "\u201d",
           ("r", "'"): "\u2019"}
# (pattern, what each group becomes): a number keeps that group's text, "l"/"r" makes
# the group's quote an opening or closing one, any other string is written as is.
_SQ_RULES: tuple[tuple[re.Pattern[str], tuple[tuple[int, str], ...]], ...] = tuple(
    (re.compile(pattern, re.ASCII | re.DOTALL), parts) for pattern, parts in (
        (r"""("|')(?=[_*]{1,2}\S)""", ((1, "l"),)),
        (rf"""("|')(?={_SQ_PUNCT}(?!\.\.)\B)""", ((1, "r"),)),
        (r"""(\s?)"'(?=\w)""", ((1, ""), (0, "\u201c"), (0, "\u2018"))),
        (r"""(\s?)'"(?=\w)""", ((1, ""), (0, "\u2018"), (0, "\u201c"))),
        (r"""(\s?)'(?=\d\ds)""", ((1, ""), (0, "\u2019"))),
        (r"""(\s)('|")(?=\w)""", ((1, ""), (2, "l"))),
        (rf"""({_SQ_CLOSE})('|")""", ((1, ""), (2, "r"))),
        (r"""("|')(?=\s|s\b|$)""", ((1, "r"),)),
        (r"(.?)'", ((1, ""), (0, "\u2018"))),
        (r'(.?)"', ((1, ""), (0, "\u201c"))),
    ))
_SYMBOLS = {"---": "\u2014", "--": "\u2013", "...": "\u2026", "\\<<": "<<",
            "\\>>": ">>", "<< ": "\u00ab\u00a0", " >>": "\u00a0\u00bb", "<<": "\u00ab",
            ">>": "\u00bb"}
_SMART_QUOTE_START = re.compile(r"""[^\\]?["']""")
_SYMBOL = re.compile("|".join(re.escape(symbol) for symbol in _SYMBOLS))
# Where kramdown looks for a span; a place that then matches no rule is one character of
# text (' <<' is a space, then '<<').
_SPAN_START = re.compile(r"""(?=[^\\]?["']|--|\.\.\.|(?:\\| )?(?:<<|>>))""")


def _smart_quote(text: str, at: int, out: list[str]) -> int:
    for pattern, parts in _SQ_RULES:
        match = pattern.match(text, at)
        if match is None:
            continue
        for group, becomes in parts:
            if group == 0:
                out.append(becomes)
            elif becomes in ("l", "r"):
                out.append(_QUOTES[(becomes, match.group(group))])
            else:
                out.append(match.group(group))
        return match.end()
    raise AssertionError("the last rules match any quote")  # pragma: no cover


def smartify(text: str) -> str:
    """Quotes, dashes, ellipses and guillemets as Jekyll's ``smartify`` makes them."""
    out: list[str] = []
    at = 0
    while (found := _SPAN_START.search(text, at)) is not None:
        start = found.start()
        out.append(text[at:start])
        if _SMART_QUOTE_START.match(text, start):
            at = _smart_quote(text, start, out)
            continue
        symbol = _SYMBOL.match(text, start)
        if symbol is None:
            out.append(text[start])
            at = start + 1
        else:
            out.append(_SYMBOLS[symbol.group()])
            at = symbol.end()
    out.append(text[at:])
    return "".join(out)


# jekyll-feed then strips HTML from the title. We strip comments, script/style and the
# tags of inline HTML elements only, so a title such as 'Why <vector> is slow' or
# '1 < 2' keeps its text (Jekyll would drop '<vector>' too).
_INLINE_TAGS = ("a|abbr|b|bdi|bdo|big|br|cite|code|del|dfn|em|font|i|img|ins|kbd|mark|q|"
                "s|samp|small|span|strike|strong|sub|sup|time|tt|u|var|wbr")
_TITLE_MARKUP = re.compile(
    rf"<!--.*?-->|<(script|style)\b.*?</\1\s*>|</?(?:{_INLINE_TAGS})(?:\s[^<>]*)?/?>",
    re.DOTALL | re.IGNORECASE)


_RUBY_SPACE = re.compile(r"[ \t\n\r\f\v]+")


@lru_cache(maxsize=8192)  # ~4 us a title, 20 in every feed page made
def feed_title(text: str) -> str:
    """A post title as jekyll-feed writes it: smartified, tags stripped, spaces folded."""
    # Tags go first: smartify must not turn '--' of a comment or quotes in attributes.
    # normalize_whitespace folds Ruby's \s only: the no-break spaces of '« x »' stay.
    # jekyll-feed writes the title as HTML (type="html"), so a reader shows its entities
    # decoded ('Tom &amp; Jerry' reads 'Tom & Jerry'); here it is text, decoded once. What
    # decoding makes markup ('&lt;b&gt;') is stripped as the markup written so is.
    title = smartify(_TITLE_MARKUP.sub("", text))
    if "&" in title:
        title = _TITLE_MARKUP.sub("", html.unescape(title))
    return " ".join(_RUBY_SPACE.split(title.strip(" \t\n\r\f\v")))
