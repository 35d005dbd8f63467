#!/usr/bin/env bash
# Draws the built-in avatars (512 px, initials over a category-coloured gradient).
# Real portraits can replace them; the app only needs a PNG named as the character's "avatar".
set -euo pipefail
cd "$(dirname "$0")"
draw() { # file initials from to
  convert -size 512x512 "gradient:$3-$4" \
    \( -size 512x512 xc:none -fill 'rgba(255,255,255,0.10)' -draw 'circle 400,110 400,330' -draw 'circle 90,460 90,600' \) -composite \
    -font DejaVu-Serif-Bold -pointsize 200 -fill 'rgba(255,255,255,0.95)' -gravity center -annotate +0+10 "$2" \
    PNG32:"$1"
}
draw ada-lovelace.png AL '#6d4aff' '#2b1a66'      # celebrity: violet
draw marisol-vega.png MV '#ff9a4d' '#c2410c'      # daily life: amber
draw sherlock-holmes.png SH '#2a9d8f' '#134e4a'   # fictional: teal
draw marie-curie.png MC '#8f6bff' '#3a2580'       # celebrity
draw leonardo-da-vinci.png LV '#7a5cf0' '#2e1d6e' # celebrity
draw walt-okafor.png WO '#f0a04b' '#9a3412'       # daily life
draw priya-raman.png PR '#ffb067' '#b45309'       # daily life
draw elizabeth-bennet.png EB '#3fb8a9' '#155e57'  # fictional
draw captain-isolde-marrow.png IM '#2f8f9d' '#123f4a' # fictional
