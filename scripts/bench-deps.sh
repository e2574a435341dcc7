#!/usr/bin/env bash
# What `python -m bench` measures against, from Debian: wrk (the load), nginx (the
# static-file and cache tiers), jekyll with jekyll-feed and hugo (the reference
# builds of the same corpus), and GNU time (a build's peak memory: bench/export.py). The benchmark skips a reference it does not find, and
# says so; this puts them all in place. Run as root, by hand, never by CI.
set -euo pipefail
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v jekyll >/dev/null || need+=(jekyll)
dpkg -s ruby-jekyll-feed >/dev/null 2>&1 || need+=(ruby-jekyll-feed)
command -v hugo >/dev/null || need+=(hugo)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check -e '.[test,bench]'
