"""Markdown as Jekyll's kramdown (GFM input) writes it, on markdown-it-py: footnotes,
GFM header ids, ``{:toc}``, typography per ``kramdown.smart_quotes``, table alignment,
definition lists, abbreviations, ``markdown="1"`` blocks, math and Rouge-style code
blocks. Attribute lists (``{: .class}``) are ``kramdown_ial``'s.

Where markdown-it's plugins write something else than kramdown, a render rule here
writes kramdown's markup (its HTML converter: ``kramdown/converter/html.rb``)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import lru_cache
from html.entities import name2codepoint
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_block import StateBlock, list_block
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.deflist import deflist_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.tasklists import tasklists_plugin

from .defaults import DEFAULT_SMART_QUOTES
from .highlight import highlight_block
from .kramdown_html import kramdown_html_block
from .kramdown_ial import abbreviations, apply_ials, expand_alds, strip_abbreviations
from .kramdown_quotes import smart_quotes as kramdown_quotes
from .kramdown_tables import kramdown_table

# kramdown's typographic_syms: '---', '--', '...', '<< ' and ' >>' (no (c), no +-).
_SYMS = re.compile(r"---|--|\.\.\.|<< |<<| >>|>>")
_SYM_CHAR = {"---": "\u2014", "--": "\u2013", "...": "\u2026", "<<": "\u00ab",
             ">>": "\u00bb", "<< ": "\u00ab\u00a0", " >>": "\u00a0\u00bb"}
_NON_WORD = re.compile(r"[^\w\- \t]")
_MARKDOWN_BLOCK = re.compile(
    r"^[ ]{0,3}<(div|section|aside|article|figure|header|footer|nav|blockquote)\b"
    r"([^>]*?)\s+markdown=(['\"]?)(1|block)\3([^>]*)>(.*?)^[ ]{0,3}</\1>[ \t]*$",
    re.DOTALL | re.MULTILINE | re.IGNORECASE)
# kramdown's extensions: {::comment}...{:/comment} (written as an HTML comment, which the
# sanitiser drops), {::nomarkdown}...{:/nomarkdown} (passed through) and {::options /}.
_EXTENSION = re.compile(
    r"^[ ]{0,3}\{::(comment|nomarkdown)\}[ \t]*\n?(.*?)\{:/(?:\1)?\}[ \t]*$"
    r"|^[ ]{0,3}\{::options\b[^}]*/\}[ \t]*$", re.DOTALL | re.MULTILINE)


def _quotes(setting: str) -> str:
    """``kramdown.smart_quotes`` (four entity names or numbers) -> the four characters."""
    chars = []
    for name in setting.split(","):
        name = name.strip()
        if name.isdigit():
            chars.append(chr(int(name)))
        elif name == "apos":
            chars.append("'")
        else:
            chars.append(chr(name2codepoint.get(name, 0x27)))
    if len(chars) != 4:
        return _quotes(DEFAULT_SMART_QUOTES)
    # markdown-it wants double quotes first, kramdown names single quotes first.
    return chars[2] + chars[3] + chars[0] + chars[1]


def _typography(state: StateCore) -> None:
    """Dashes, ellipses and guillemets in text (never in code), as kramdown does."""
    for token in state.tokens:
        if token.type != "inline" or not token.children:
            continue
        for child in token.children:
            if child.type != "text":
                continue
            if _SYMS.search(child.content):
                child.content = _SYMS.sub(lambda m: _SYM_CHAR[m.group()], child.content)


# kramdown's HTML_BLOCK_ELEMENTS: met inside a paragraph, such a tag is text (escaped).
_BLOCK_TAG = re.compile(
    r"</?(?:address|article|aside|applet|body|blockquote|caption|col|colgroup|dd|div|dl"
    r"|dt|fieldset|figcaption|footer|form|h[1-6]|header|hgroup|hr|html|head|iframe|legend"
    r"|menu|li|main|map|nav|ol|optgroup|p|pre|section|summary|table|tbody|td|th|thead"
    r"|tfoot|tr|ul)(?=[\s/>])", re.IGNORECASE)


def _block_tags_as_text(state: StateCore) -> None:
    """A block-level HTML tag inside a paragraph (a ``markdownify`` result in a line of
    text, say) is written as text, as kramdown writes it; at a line's start it is an
    HTML block, as in kramdown."""
    for token in state.tokens:
        for child in token.children or ():
            if child.type == "html_inline" and _BLOCK_TAG.match(child.content):
                child.type = "text"


def _plain(children: Sequence[Token]) -> str:
    return "".join(c.content for c in children if c.type in {"text", "code_inline"})


def _task_lists(state: StateCore) -> None:
    """GFM task lists with kramdown-parser-gfm's classes, the box right before the text."""
    for token in state.tokens:
        if token.attrGet("class") == "contains-task-list":
            token.attrSet("class", "task-list")
        children = token.children or []
        if token.type == "inline" and len(children) > 1 and \
                children[0].content.startswith('<input class="task-list-item-checkbox"'):
            children[1].content = children[1].content.lstrip(" ")


def _kramdown_list(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """markdown-it's list rule, but for CommonMark's '1)' items: kramdown's lists are
    '1.' ones only, so '2) text' is a paragraph there."""
    at = state.bMarks[start] + state.tShift[start]
    text = state.src
    digits = at
    while digits < state.eMarks[start] and text[digits].isdigit():
        digits += 1
    if digits > at and digits < len(text) and text[digits] == ")":
        return False
    return list_block(state, start, end, silent)


def _list_numbers(state: StateCore) -> None:
    """kramdown writes every ordered list as a plain ``<ol>``: '3. x' shows 1, as on the
    Jekyll site (an attribute list's ``start`` still comes after, from ``{: start="3"}``).
    ``***x***`` is strong around em there, em around strong in markdown-it."""
    for token in state.tokens:
        if token.type == "ordered_list_open" and token.attrs:
            token.attrs.pop("start", None)
        if not token.children:
            continue
        # Delimiter runs leave empty text tokens between the markers.
        children = token.children = [c for c in token.children
                                     if c.type != "text" or c.content]
        for i in range(len(children) - 1):
            if children[i].type == "em_open" and children[i + 1].type == "strong_open":
                close = _closing(children, i + 1, "strong_close")
                if close + 1 < len(children) and children[close + 1].type == "em_close":
                    children[i], children[i + 1] = children[i + 1], children[i]
                    children[close], children[close + 1] = children[close + 1], children[close]


def _closing(children: list[Token], at: int, kind: str) -> int:
    """Where the token opened at ``at`` closes (``kind``), at its own nesting level."""
    depth = 0
    for j in range(at, len(children)):
        depth += children[j].nesting
        if depth == 0 and children[j].type == kind:
            return j
    return len(children)


def _header_ids(state: StateCore) -> None:
    """kramdown-parser-gfm's ids: the header's text lower-cased, what is not a word
    character, '-', space or tab dropped, spaces made '-'; a repeat gets '-1', '-2'."""
    seen: dict[str, int] = {}
    tokens = state.tokens
    for i, token in enumerate(tokens):
        if token.type != "heading_open" or token.attrGet("id") is not None:
            continue
        text = _plain(tokens[i + 1].children or [])
        base = _NON_WORD.sub("", text.lower()).replace(" ", "-").replace("\t", "-")
        count = seen.get(base, -1) + 1
        seen[base] = count
        token.attrSet("id", f"{base}-{count}" if count else base)
        token.meta["toc_text"] = tokens[i + 1]


def _math(state: StateInline, silent: bool) -> bool:
    """``$$...$$`` inside text: kramdown's math (MathJax's \\( \\) in a paragraph)."""
    src, pos = state.src, state.pos
    if not src.startswith("$$", pos):
        return False
    end = src.find("$$", pos + 2)
    if end < 0 or not src[pos + 2:end].strip():
        return False
    if not silent:
        token = state.push("math_inline", "", 0)
        token.content = src[pos + 2:end].strip()
    state.pos = end + 2
    return True


def _math_blocks(state: StateCore) -> None:
    """A paragraph of nothing but ``$$...$$`` is display math, written without <p>."""
    tokens = state.tokens
    for i in range(1, len(tokens) - 1):
        children = tokens[i].children
        if (tokens[i - 1].type == "paragraph_open" and children and len(children) == 1
                and children[0].type == "math_inline"):
            children[0].meta["display"] = True
            tokens[i - 1].hidden = tokens[i + 1].hidden = True


def _toc(state: StateCore) -> None:
    """The list marked ``{:toc}`` becomes kramdown's table of contents."""
    tokens = state.tokens
    for i, token in enumerate(tokens):
        if token.meta.get("toc") and token.type in {"bullet_list_open", "ordered_list_open"}:
            depth, end = 0, i
            for end in range(i, len(tokens)):
                depth += tokens[end].nesting
                if depth == 0:
                    break
            marker = Token("html_block", "", 0)
            marker.meta["toc_of"] = token
            tokens[i:end + 1] = [marker]
            return


def _render_toc(md: MarkdownIt, tokens: Sequence[Token], list_open: Token,
                options: OptionsDict, env: EnvType) -> str:
    heads = [(int(t.tag[1]), t.attrGet("id"), t.meta["toc_text"]) for t in tokens
             if t.type == "heading_open" and "toc_text" in t.meta]
    tag = "ol" if list_open.type == "ordered_list_open" else "ul"
    attrs = dict(list_open.attrs)
    attrs.setdefault("id", "markdown-toc")
    out = ["<" + tag + "".join(f' {k}="{html.escape(str(v))}"' for k, v in attrs.items())
           + ">"]
    levels: list[int] = []
    for level, anchor, inline in heads:
        while levels and levels[-1] > level:
            out.append(f"</li></{tag}>")
            levels.pop()
        if levels and levels[-1] == level:
            out.append("</li>")
        elif levels:
            out.append(f"<{tag}>")
        if not levels or levels[-1] < level:
            levels.append(level)
        text = RendererHTML.renderInline(md.renderer, inline.children or [], options, env)  # type: ignore[arg-type]
        out.append(f'<li><a href="#{anchor}" id="markdown-toc-{anchor}">{text}</a>')
    out.extend([f"</li></{tag}>"] * (len(levels) - 1))
    out.append(f"</li></{tag}>\n" if levels else f"</{tag}>\n")
    return "".join(out)


def _label(meta: dict[str, Any]) -> str:
    """A footnote's name in its ids: its label ('1', 'note'), as kramdown names them."""
    return html.escape(str(meta.get("label") or meta["id"] + 1))


def _math_inline(self: Any, tokens: Sequence[Token], idx: int, *_: Any) -> str:
    text = html.escape(tokens[idx].content, quote=False)
    return f"\\[{text}\\]\n" if tokens[idx].meta.get("display") else f"\\({text}\\)"

def _code_inline(self: Any, tokens: Sequence[Token], idx: int, *_: Any) -> str:
    token = tokens[idx]
    classes = " ".join([*str(token.attrGet("class") or "").split(),
                        "language-plaintext", "highlighter-rouge"])
    attrs = "".join(f' {k}="{html.escape(str(v))}"' for k, v in token.attrs.items()
                    if k != "class")
    text = html.escape(token.content, quote=False)
    return f'<code class="{classes}"{attrs}>{text}</code>'

def _fence(self: Any, tokens: Sequence[Token], idx: int, *_: Any) -> str:
    token = tokens[idx]
    lang = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
    return highlight_block(token.content, lang)


def _install_rules(md: MarkdownIt) -> None:
    rules: Any = md.add_render_rule

    def footnote_ref(self: Any, tokens: Sequence[Token], idx: int, *_: Any) -> str:
        meta = tokens[idx].meta
        label = _label(meta)
        ref = f"{label}:{meta['subId']}" if meta.get("subId") else label
        return (f'<sup id="fnref:{ref}" role="doc-noteref"><a href="#fn:{label}" '
                f'class="footnote" rel="footnote">{meta["id"] + 1}</a></sup>')

    def footnote_open(self: Any, tokens: Sequence[Token], idx: int, *_: Any) -> str:
        return f'<li id="fn:{_label(tokens[idx].meta)}" role="doc-endnote">'

    def footnote_anchor(self: Any, tokens: Sequence[Token], idx: int, *_: Any) -> str:
        # One back link for each reference: the first after a no-break space, the
        # others numbered, as kramdown writes them.
        meta = tokens[idx].meta
        label, sub = _label(meta), meta.get("subId") or 0
        ref = f"{label}:{sub}" if sub else label
        return (f'{"" if sub else "&#160;"}<a href="#fnref:{ref}" class="reversefootnote" '
                f'role="doc-backlink">&#8617;{f"<sup>{sub + 1}</sup>" if sub else ""}</a>')

    def html_block(self: Any, tokens: Sequence[Token], idx: int, options: OptionsDict,
                   env: EnvType) -> str:
        toc_of = tokens[idx].meta.get("toc_of")
        if toc_of is not None:
            return _render_toc(md, tokens, toc_of, options, env)
        return tokens[idx].content

    rules("footnote_ref", footnote_ref)
    rules("footnote_open", footnote_open)
    rules("footnote_close", lambda *_: "</li>\n")
    rules("footnote_anchor", footnote_anchor)
    rules("footnote_block_open",
          lambda *_: '<div class="footnotes" role="doc-endnotes">\n<ol>\n')
    rules("footnote_block_close", lambda *_: "</ol>\n</div>\n")
    rules("html_block", html_block)
    rules("math_inline", _math_inline)
    rules("fence", _fence)
    rules("code_inline", _code_inline)
    rules("s_open", lambda *_: "<del>")  # GFM ~~strikethrough~~, as kramdown writes it
    rules("s_close", lambda *_: "</del>")
    rules("code_block", _fence)


@lru_cache(maxsize=8)
def _parser(smart_quotes: str) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True, "typographer": True,
                                   "quotes": _quotes(smart_quotes)})
    md.enable(["table", "strikethrough"])
    md.use(footnote_plugin).use(deflist_plugin).use(tasklists_plugin)
    md.inline.ruler.before("escape", "kramdown_math", _math)
    md.block.ruler.at("list", _kramdown_list, {"alt": ["paragraph", "reference", "blockquote"]})
    md.block.ruler.before("paragraph", "kramdown_table", kramdown_table)
    md.block.ruler.before("html_block", "kramdown_html_block", kramdown_html_block,
                          {"alt": ["paragraph", "reference", "blockquote"]})
    # Attribute lists first: their values are not prose for the typographer.
    md.core.ruler.before("smartquotes", "kramdown_lists", _list_numbers)
    md.core.ruler.before("smartquotes", "kramdown_ial", apply_ials)
    md.core.ruler.before("smartquotes", "kramdown_quotes", kramdown_quotes)
    md.core.ruler.before("smartquotes", "kramdown_block_tags", _block_tags_as_text)
    md.core.ruler.push("kramdown_task_lists", _task_lists)
    md.core.ruler.push("kramdown_typography", _typography)
    md.core.ruler.push("kramdown_abbr", abbreviations)
    md.core.ruler.push("kramdown_math_blocks", _math_blocks)
    md.core.ruler.push("kramdown_ids", _header_ids)
    md.core.ruler.push("kramdown_toc", _toc)
    _install_rules(md)
    return md


def kramdown(text: str, smart_quotes: str = DEFAULT_SMART_QUOTES) -> str:
    """Markdown -> HTML as kramdown (Jekyll's default, GFM input) writes it."""
    md = _parser(smart_quotes)
    text, abbrs = strip_abbreviations(expand_alds(text))
    blocks: list[str] = []

    def inner(match: re.Match[str]) -> str:
        attrs = (match.group(2) + match.group(5)).rstrip()
        blocks.append(f"<{match.group(1)}{attrs}>\n{kramdown(match.group(6), smart_quotes)}"
                      f"</{match.group(1)}>")
        return f"<!--feeds-markdown-{len(blocks) - 1}-->"

    def extension(match: re.Match[str]) -> str:
        if match.group(1) != "nomarkdown":
            return ""
        blocks.append(match.group(2))
        return f"<!--feeds-markdown-{len(blocks) - 1}-->"

    text = _EXTENSION.sub(extension, text) if "{::" in text else text
    text = _MARKDOWN_BLOCK.sub(inner, text)
    out = str(md.render(text, {"abbreviations": abbrs}))
    for n, block in enumerate(blocks):
        out = out.replace(f"<!--feeds-markdown-{n}-->", block, 1)
    return out


def smartify(text: str, smart_quotes: str = DEFAULT_SMART_QUOTES) -> str:
    """Jekyll's ``smartify`` filter: quotes, dashes and ellipses of one line of text."""
    return str(_parser(smart_quotes).renderInline(text))
