#!/usr/bin/env bash
# Regenerates every icon from the one source image, icons/source.svg (RGBA PNGs; Tauri needs alpha).
set -euo pipefail
cd "$(dirname "$0")"
for s in 32 128 256 512; do convert -background none -density 384 source.svg -resize ${s}x${s} PNG32:${s}x${s}.png; done
mv 256x256.png 128x128@2x.png
convert -background none -density 384 source.svg -resize 1024x1024 PNG32:icon.png
