#!/usr/bin/env bash
# Regenerates every icon from the one source image, icons/source.svg (RGBA PNGs; Tauri needs alpha).
set -euo pipefail
cd "$(dirname "$0")"
for s in 32 128 256 512; do convert -background none -density 384 source.svg -resize ${s}x${s} PNG32:${s}x${s}.png; done
cp 256x256.png 128x128@2x.png
convert -background none -density 384 source.svg -resize 1024x1024 PNG32:icon.png
# Windows wants one .ico holding several sizes.
convert 256x256.png 128x128.png 32x32.png -background none icon.ico 2>/dev/null || convert 128x128@2x.png 128x128.png 32x32.png icon.ico
rm -f 256x256.png
