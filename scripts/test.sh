#!/usr/bin/env bash
# The one command that installs everything the tests need and runs them:
# Debian packages (jing for the Atom RELAX NG schema, nginx for the scale-out
# test, chromium + chromedriver for the browser test, CJK fonts for its
# screenshots, newsboat as a real feed reader), the package with its test extras
# (reader and flask-websub among them), then ruff, mypy --strict and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v jing >/dev/null || need+=(jing)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v newsboat >/dev/null || need+=(newsboat)
# The real Jekyll and jekyll-feed: the oracle of the golden tests (tests/jekyll.py).
command -v jekyll >/dev/null || need+=(jekyll)
dpkg -s ruby-jekyll-feed >/dev/null 2>&1 || need+=(ruby-jekyll-feed)
# Chinese glyphs in the browser test's screenshots (the assertions do not need them).
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "installing Debian packages: ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "warning: not root, cannot install ${need[*]}; tests needing them will skip" >&2
    fi
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
python3 -m ruff check .
python3 -m mypy --strict feeds
python3 -m pytest "$@"
