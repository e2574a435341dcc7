"""Liquid in a post, rendered first, as Jekyll does, with python-liquid: ``site.*`` (the
``_config.yml``), ``page.*`` (the front matter and the post's own values), Jekyll's tags
(``post_url``, ``link``, ``include``, ``include_relative``, ``highlight``) and filters.

A template reads no file outside the content folder: ``include`` reads only from its
``_includes/``, ``include_relative`` only beside the post, and neither follows a path or
a link out. A Liquid error raises :class:`LiquidError`; the caller shows the text as
written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import liquid
from liquid import Environment, Node, Tag
from liquid.ast import BlockNode
from liquid.filter import with_context
from liquid.parser import get_parser
from liquid.stream import TokenStream
from liquid.token import TOKEN_EOF, TOKEN_EXPRESSION, TOKEN_TAG

from .highlight import highlight_tag
from .liquid_filters import jekyll_filters
from .liquid_site import LiquidError, LiquidSite

MAX_INCLUDE_BYTES = 1_000_000
_PARAM = re.compile(r"""([\w-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s]+))""")


def _read_inside(root: Path, folder: Path, name: str) -> str:
    """``name`` under ``folder``, which is inside ``root``: nothing else is read."""
    name = name.strip()
    if not name or name.startswith(("/", "\\")) or "\0" in name:
        raise LiquidError(f"cannot include {name!r}")
    real_root = root.resolve()
    path = (folder / name).resolve()
    if not path.is_relative_to(real_root) or not path.is_relative_to(folder.resolve()):
        raise LiquidError(f"{name!r} is outside the content folder's {folder.name}/")
    if not path.is_file():
        raise LiquidError(f"no file {name!r} in {folder.name}/")
    if path.stat().st_size > MAX_INCLUDE_BYTES:
        raise LiquidError(f"{name!r} is too large to include")
    return path.read_text(encoding="utf-8", errors="replace")


def _expression(stream: TokenStream) -> str:
    """The raw text after the current tag's name (Jekyll's tags parse it themselves).
    Leaves the stream on the tag's last token: the parser steps over it."""
    if stream.peek.kind == TOKEN_EXPRESSION:
        next(stream)
        return str(stream.current.value)
    return ""


Write = Callable[[Any, str, TextIO], None]
"""A tag's work: (render context, its raw argument text, the output buffer)."""


class _ArgumentNode(Node):
    """A tag that works from its raw argument text at render time."""

    __slots__ = ("text", "write")

    def __init__(self, token: Any, text: str, write: Write) -> None:
        super().__init__(token)
        self.text = text
        self.write = write
        self.blank = False

    def render_to_output(self, context: Any, buffer: TextIO) -> int:
        self.write(context, self.text, buffer)
        return True


def _argument_tag(tag_name: str, write: Write) -> type[Tag]:
    class ArgumentTag(Tag):
        name = tag_name
        block = False

        def parse(self, stream: TokenStream) -> Node:
            token = stream.current
            return _ArgumentNode(token, _expression(stream), write)

    return ArgumentTag


def _writes(compute: Callable[[Any, str], str]) -> Write:
    def write(context: Any, text: str, buffer: TextIO) -> None:
        buffer.write(compute(context, text))

    return write


def _interpolate(context: Any, text: str) -> str:
    """``{{ var }}`` inside a tag's argument (Jekyll allows it in link and include)."""
    if "{{" not in text:
        return text.strip()
    return str(context.env.from_string(text).render(**_scope(context))).strip()


def _scope(context: Any) -> dict[str, Any]:
    return {name: context.resolve(name, default=None) for name in ("site", "page", "include")}


class _HighlightNode(Node):
    __slots__ = ("block", "lang", "linenos")

    def __init__(self, token: Any, words: list[str], block: BlockNode) -> None:
        super().__init__(token)
        self.lang = words[0] if words else "plaintext"
        self.linenos = "linenos" in words[1:]
        self.block = block
        self.blank = False

    def render_to_output(self, context: Any, buffer: TextIO) -> int:
        inner = context.get_buffer(buffer)
        self.block.render(context, inner)
        buffer.write(highlight_tag(inner.getvalue(), self.lang, self.linenos))
        return True


class _HighlightTag(Tag):
    name = "highlight"
    end = "endhighlight"

    def parse(self, stream: TokenStream) -> Node:
        token = stream.current
        words = _expression(stream).split()
        next(stream)
        block = get_parser(self.env).parse_block(stream, frozenset((self.end, TOKEN_EOF)))
        stream.expect(TOKEN_TAG, value=self.end)
        return _HighlightNode(token, words, block)


def _include(relative: bool) -> Write:
    """Jekyll's include (from _includes/) or include_relative (beside the post)."""

    def write(context: Any, text: str, buffer: TextIO) -> None:
        site: LiquidSite = context.env.site
        name, _, params = _interpolate(context, text).partition(" ")
        page = context.resolve("page", default=None)
        path = page.get("path") if isinstance(page, Mapping) else None
        if path and page.get("collection"):  # as Jekyll: a post's path is below the dir
            path = f"{site.collections_dir}/{path}".lstrip("/")
        beside = (site.root / str(path)).parent if path else site.root
        folder = beside if relative else site.root / "_includes"
        source = _read_inside(site.root, folder, name)
        values: dict[str, object] = {}
        for match in _PARAM.finditer(params):
            key, dq, sq, bare = match.groups()
            if dq is not None or sq is not None:
                values[key] = dq if dq is not None else sq
            else:
                values[key] = context.get(bare.split("."), token=None, default=None)
        template = context.env.from_string(source)
        with context.extend({"include": values}, template=template):
            template.render_with_context(context, buffer, partial=True)

    return write


def _post_url(context: Any, text: str) -> str:
    site: LiquidSite = context.env.site
    name = text.strip()
    url = site.post_urls.get(name) or site.post_urls.get(name.rsplit("/", 1)[-1])
    if url is None:
        raise LiquidError(f"post_url: no post {name!r}")
    return site.baseurl + url


def _link(context: Any, text: str) -> str:
    site: LiquidSite = context.env.site
    path = _interpolate(context, text).lstrip("/")
    url = site.file_urls.get(path)
    if url is None:
        raise LiquidError(f"link: no file {path!r}")
    return site.baseurl + url


@with_context
def _where_exp(value: object, name: str, expression: str, *, context: Any) -> object:
    """Jekyll's ``where_exp``: the items for which the Liquid condition holds."""
    if not isinstance(value, list | tuple):
        return value
    test = context.env.from_string(f"{{% if {expression} %}}1{{% endif %}}")
    scope = _scope(context)
    return [item for item in value if test.render(**scope, **{name: item}) == "1"]


class _JekyllEnvironment(Environment):
    site: LiquidSite
    # Bounds, so that one post's Liquid cannot hold a render thread or fill the memory
    # ({% for i in (1..1000000000) %}): past them it is a Liquid error, shown as written.
    loop_iteration_limit = 200_000
    output_stream_limit = 20_000_000
    local_namespace_limit = 20_000_000


def environment(site: LiquidSite, markdownify: Callable[[str], str],
                smartify: Callable[[str], str]) -> Environment:
    """A Liquid environment for one site: Jekyll's tags and filters, unknown filters
    ignored (as Jekyll does), and no loader (``include`` is ours)."""
    env = _JekyllEnvironment(strict_filters=False, tolerance=liquid.Mode.STRICT)
    env.site = site
    for tag in (_argument_tag("post_url", _writes(_post_url)),
                _argument_tag("link", _writes(_link)), _HighlightTag,
                _argument_tag("include", _include(False)),
                _argument_tag("include_relative", _include(True))):
        env.add_tag(tag)
    env.add_filter("where_exp", _where_exp)
    for name, func in jekyll_filters(site.base, site.baseurl, site.tz, markdownify,
                                     smartify).items():
        env.add_filter(name, func)
    return env


def render_liquid(env: Environment, text: str, page: Mapping[str, Any]) -> str:
    """``text`` with its Liquid rendered (``page['path']`` is the post's file, relative
    to ``collections_dir`` as Jekyll's is); LiquidError on any error."""
    site: LiquidSite = env.site  # type: ignore[attr-defined]
    try:
        return str(env.from_string(text).render(site=site.config, page=page))
    except LiquidError:
        raise
    except liquid.exceptions.LiquidError as e:
        raise LiquidError(" ".join(str(e).split())) from None
