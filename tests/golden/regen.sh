#!/usr/bin/env bash
# Rebuild the golden feeds in expected/ from site/ with the real Jekyll.
# Needs Jekyll 4.3 + jekyll-feed 0.17 (Debian: apt-get install -y jekyll ruby-jekyll-feed).
# Deterministic: site.time is pinned in site/_config.yml, the zone comes from
# `timezone:` there, and nothing is written inside site/ (disk cache disabled).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/site"
out="$here/expected"

command -v jekyll >/dev/null || { echo "jekyll not found (apt-get install -y jekyll ruby-jekyll-feed)" >&2; exit 1; }

export LC_ALL=C.UTF-8 LANG=C.UTF-8   # UTF-8 file names and front matter
export JEKYLL_ENV=production
unset JEKYLL_NO_BUNDLER_REQUIRE BUNDLE_GEMFILE

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

jekyll build --disable-disk-cache \
  --source "$src" --destination "$tmp/_site" >"$tmp/build.log" 2>&1 \
  || { cat "$tmp/build.log" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"
cd "$tmp/_site"
# feed.xml, feed/*.xml, feed/by_tag/*.xml (and any deeper feed/ paths), paths kept.
[ -f feed.xml ] || { echo "no feed.xml built; log:" >&2; cat "$tmp/build.log" >&2; exit 1; }
{ echo feed.xml; if [ -d feed ]; then find feed -type f -name '*.xml'; fi; } \
  | LC_ALL=C sort | while IFS= read -r f; do
      mkdir -p "$out/$(dirname "$f")"
      cp "$f" "$out/$f"
    done

echo "jekyll $(jekyll --version | awk '{print $2}'): wrote $(find "$out" -type f | wc -l) feed files to $out"
