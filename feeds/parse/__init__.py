"""One file -> one Post: front matter, Jekyll's dates and permalinks; and, lazily, the
post's body -> sanitised HTML with absolute URLs.

Everything that can be wrong with one file is raised as :class:`PostError` naming the
file; what the service can mend (a missing title, stray control characters) is mended
and reported as a warning instead. One job a module, in the order a file meets them:

- ``text``         PostError, SkipFile, and the characters XML cannot carry
- ``frontmatter``  bytes -> text, the size limit, the one split, the YAML read safely
- ``simple_yaml``  the fast path for plain ``key: value`` front matter
- ``dates``        Jekyll's (Ruby's) date rules: Time.parse's forms, DST as Ruby reads it
- ``values``       front-matter values read leniently: a value of an unused type is
                   ignored with a warning, as Jekyll would still publish the post
- ``urls``         slugs, permalinks, percent-encoding, the entry id
- ``entry_filter`` which files Jekyll reads as posts: exclude, include, _posts folders
- ``post``         the parts -> a Post
- ``highlight``    code as Rouge highlights it (Pygments, Rouge's classes)
- ``kramdown_ial`` kramdown's attribute lists and abbreviations
- ``kramdown_quotes`` kramdown's smart quotes: each quote by its rules, not by pairs
- ``kramdown_tables`` kramdown's tables that GFM does not see (no ``|---|`` line)
- ``kramdown_html``  kramdown's HTML blocks, which end with their element
- ``kramdown``     Markdown -> HTML as Jekyll's kramdown writes it
- ``liquid_site``  what a post's Liquid sees of its site (light: no engine imported)
- ``liquid_filters`` Jekyll's Liquid filters
- ``liquid``       Liquid with Jekyll's tags, reading nothing outside the content folder
- ``sanitise``     HTML -> safe HTML with absolute URLs; what news sites embed stays
- ``body``         Markdown / HTML -> a sanitised Body, read when first needed
"""

from .body import (
    BodyRules,
    BodyText,
    body_text,
    finish_body,
    hold_background,
    holds_liquid,
    liquid_environment,
    markup_body,
    page_vars,
    render_body,
    rendering,
    summary_of,
    wait_quiet,
    warm_engine,
    warm_lexers,
    warm_up,
    with_liquid,
)
from .dates import parse_date
from .entry_filter import Folders, enters, folders, is_jekyll_post
from .frontmatter import CONTROL_WARNING, LOADER, check_size, decode, split_front_matter
from .liquid_site import LiquidError, LiquidSite, PostVars, SiteVars, read_data, ruby_time
from .post import (
    MARKDOWN_EXTENSIONS,
    POST_EXTENSIONS,
    Parsed,
    SiteRules,
    parse_post,
    site_rules,
)
from .text import XML_ILLEGAL, PostError, SkipFile, clean_text
from .urls import (
    below,
    build_permalink,
    escape_path,
    folder_categories,
    jekyll_relative,
    slugify_default,
    slugify_pretty,
    titleize_slug,
)

__all__ = [
    "CONTROL_WARNING",
    "LOADER",
    "MARKDOWN_EXTENSIONS",
    "POST_EXTENSIONS",
    "XML_ILLEGAL",
    "BodyRules",
    "BodyText",
    "Folders",
    "LiquidError",
    "LiquidSite",
    "Parsed",
    "PostError",
    "PostVars",
    "SiteRules",
    "SiteVars",
    "SkipFile",
    "below",
    "body_text",
    "build_permalink",
    "check_size",
    "clean_text",
    "decode",
    "enters",
    "escape_path",
    "finish_body",
    "folder_categories",
    "folders",
    "hold_background",
    "holds_liquid",
    "is_jekyll_post",
    "jekyll_relative",
    "liquid_environment",
    "markup_body",
    "page_vars",
    "parse_date",
    "parse_post",
    "read_data",
    "render_body",
    "rendering",
    "ruby_time",
    "site_rules",
    "slugify_default",
    "slugify_pretty",
    "split_front_matter",
    "summary_of",
    "titleize_slug",
    "wait_quiet",
    "warm_engine",
    "warm_lexers",
    "warm_up",
    "with_liquid",
]
