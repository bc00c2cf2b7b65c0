#!/usr/bin/env bash
# The README's Files screenshots: a scripted walkthrough of the window as a daily tool (app/walkthrough.py) in a
# real X window (Xvfb, 1366x768): a 10-minute scene of CC0 ESC-50 clips opened from the command line, an event
# played, three reviewed with the keys, per-file tables and clips exported.
# Needs (Debian): xvfb and the Qt xcb libraries as for docs/screenshot.sh, ESC-50 (--esc50 DIR, default
# ../shared/data/esc50), and for sound ../shared/tools/virtual-mic.sh (without it, playing is skipped).
# Usage: bash docs/walkthrough.sh [--out DIR] [--esc50 DIR] [--work DIR]
#        -> DIR/walkthrough-file.png, DIR/walkthrough-event.png (default docs/)
set -euo pipefail
cd "$(dirname "$0")/.."
DISPLAY_NUM=:96
Xvfb $DISPLAY_NUM -screen 0 1366x768x24 -nolisten tcp >/dev/null 2>&1 &
XVFB=$!
trap 'kill $XVFB 2>/dev/null || true' EXIT
sleep 1
[ -f .venv/bin/activate ] && . .venv/bin/activate
DISPLAY=$DISPLAY_NUM QT_QPA_PLATFORM=xcb python -m app.walkthrough "$@"
