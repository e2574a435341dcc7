"""Code highlighted as Jekyll's Rouge writes it, with Pygments: the same short token
classes (``k``, ``nf``, ``s2``...), no span around plain text or whitespace, runs of one
token type merged, and Rouge's wrappers for a fenced block and for ``{% highlight %}``."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from functools import lru_cache

from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES, Text, Whitespace, _TokenType
from pygments.util import ClassNotFound


@lru_cache(maxsize=256)
def _lexer(lang: str) -> Lexer | None:
    """The lexer of ``lang``, made once: Pygments looks the name up through every
    lexer's aliases (~0.1 ms a code block). A lexer keeps only its options, so one
    serves every thread."""
    if not lang:
        return None
    try:
        return get_lexer_by_name(lang, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


_LANGUAGES = re.compile(
    r"^[ \t]{0,3}(?:`{3,}|~{3,})[ \t]*([\w+#.-]+)|\{%-?\s*highlight\s+([\w+#.-]+)", re.M)


def warm_lexers(texts: Iterable[str]) -> None:
    """Make the lexers these bodies' code blocks name (a fence's info string, a
    ``highlight`` tag) ready now: a lexer's first use compiles its rules, 5-85 ms."""
    for text in texts:
        for fence, tag in _LANGUAGES.findall(text):
            _lexer(fence or tag)


def _css_class(kind: _TokenType) -> str:
    node: _TokenType | None = kind
    while node is not None and node not in STANDARD_TYPES:
        node = node.parent
    return str(STANDARD_TYPES[node]) if node is not None else ""


def highlighted(code: str, lang: str) -> str:
    """``code`` as escaped HTML with Rouge's token spans (plain when no lexer knows
    ``lang``)."""
    lexer = _lexer(lang)
    if lexer is None:
        return html.escape(code, quote=False)
    out: list[str] = []
    run_class, run = "", ""
    for kind, value in lexer.get_tokens(code):
        plain = kind is Text or kind is Whitespace or kind.parent is Text
        css = "" if plain else _css_class(kind)
        if value == "\n" and run_class == "c1":
            css = "c1"  # Rouge ends a line comment with its newline
        if css != run_class and run:
            out.append(_span(run_class, run))
            run = ""
        run_class, run = css, run + value
    if run:
        out.append(_span(run_class, run))
    return "".join(out)


def _span(css: str, text: str) -> str:
    escaped = html.escape(text, quote=False)
    return f'<span class="{css}">{escaped}</span>' if css else escaped


def highlight_block(code: str, lang: str) -> str:
    """A fenced or indented Markdown code block, as kramdown with Rouge writes it."""
    outer = f"language-{html.escape(lang or 'plaintext')} highlighter-rouge"
    return (f'<div class="{outer}"><div class="highlight"><pre class="highlight"><code>'
            f"{highlighted(code, lang)}</code></pre></div></div>\n")


def highlight_tag(code: str, lang: str, linenos: bool = False) -> str:
    """Liquid's ``{% highlight lang [linenos] %}``, as Jekyll writes it."""
    lang_attr = html.escape(lang)
    code = code.strip("\n")
    inner = highlighted(code, lang)
    if linenos:
        numbers = "".join(f"{n}\n" for n in range(1, code.count("\n") + 2))
        inner = ('<table class="rouge-table"><tbody><tr><td class="gutter gl">'
                 f'<pre class="lineno">{numbers}</pre></td><td class="code"><pre>{inner}'
                 "</pre></td></tr></tbody></table>")
    return (f'<figure class="highlight"><pre><code class="language-{lang_attr}" '
            f'data-lang="{lang_attr}">{inner}</code></pre></figure>')
