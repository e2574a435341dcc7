"""Serve the sample content: `python app.py` (same flags as `feeds serve`)."""

import sys

from feeds.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
