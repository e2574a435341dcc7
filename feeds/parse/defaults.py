"""The defaults of the body settings (``config`` declares them): kept here, below
``config``, so the renderers of ``parse`` need nothing above them."""

# The big video hosts' players, each with its subdomains (www.youtube.com, ...).
DEFAULT_IFRAME_HOSTS = ("youtube.com", "youtube-nocookie.com", "player.vimeo.com",
                        "player.bilibili.com", "player.youku.com", "v.qq.com")
# kramdown's default: the entity names of the single, then the double quotes.
DEFAULT_SMART_QUOTES = "lsquo,rsquo,ldquo,rdquo"
