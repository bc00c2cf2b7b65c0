#!/usr/bin/env bash
# The README's Live screenshot: the app, in a real X window (Xvfb), tagging real clips as they play.
# Needs (Debian): xvfb and the Qt xcb libraries, e.g.
#   apt-get install -y xvfb libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
#       libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0 libx11-xcb1
# Usage: bash docs/screenshot.sh [OUT_DIR]   (default docs/) -> screenshot-live.png (the Files tab: docs/walkthrough.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs}
DISPLAY_NUM=:97
Xvfb $DISPLAY_NUM -screen 0 1440x900x24 -nolisten tcp >/dev/null 2>&1 &
XVFB=$!
trap 'kill $XVFB 2>/dev/null || true' EXIT
sleep 1
[ -f .venv/bin/activate ] && . .venv/bin/activate
DISPLAY=$DISPLAY_NUM QT_QPA_PLATFORM=xcb python -m app.screenshot --out "$OUT"
