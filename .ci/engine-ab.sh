#!/usr/bin/env bash
# The engine A/B for issue 6's "quality unchanged" (a measurement, run by hand; its reference
# output is what `tests/engine.rs` checks on every test run). Builds tests/engine-ab twice:
#
#   upstream: mistral.rs 0.8.1 and candle 0.10.2 exactly as published on crates.io, compiled for
#             x86-64-v3 (upstream candle picks its AVX2 kernels at compile time; this is the
#             build Troupe shipped before its patches);
#   patched:  the same program with Troupe's vendored candle-core and mistralrs-core, compiled
#             for plain x86-64 as Troupe is.
#
# Each loads the default model as Troupe runs it (its Q8_0 transcode, made by `troupe bench`
# here), answers tests/engine-ab/prompts.json greedily and scores the fixed text; the two JSON
# outputs are compared. About 20 minutes per build on 2 cores the first time; cached after.
#
#   bash .ci/engine-ab.sh                     # build, run both, compare
#   bash .ci/engine-ab.sh --write-reference   # ... and keep upstream's output as the reference
set -euo pipefail
source "$(dirname "$0")/lib.sh"
WORK="${ENGINE_AB_DIR:-$HOME/.cache/troupe/engine-ab}"
FIXTURES="${TROUPE_FIXTURES:-$ROOT/../shared/fixtures}"
TEXT="$FIXTURES/eval/rolebench/role-generalization-role-specific-test.jsonl"
mkdir -p "$WORK"

# The model as Troupe runs it: the default Q4_1 file's Q8_0 transcode, made by Troupe itself in
# a scratch cache.
model="$(fetch_default_model)"
vendor_prepare
cargo build -p troupe --no-default-features >&2
vendor_built
scratch="$(mktemp -d)"
TROUPE_CACHE_DIR="$scratch/cache" TROUPE_DATA_DIR="$scratch/data" \
  "$CARGO_TARGET_DIR/debug/troupe" --model "$model" bench --runs 1 --max-tokens 1 >/dev/null
copy="$(ls "$scratch"/cache/models/*.simd.gguf)"
mv "$copy" "$WORK/default-model.q8_0.gguf"
rm -rf "$scratch"

build() { # name, extra Cargo.toml text, RUSTFLAGS
  local dir="$WORK/$1"
  mkdir -p "$dir/src"
  cp "$ROOT/tests/engine-ab/src/main.rs" "$dir/src/"
  { cat "$ROOT/tests/engine-ab/Cargo.toml"; printf '%s\n' "$2"; } > "$dir/Cargo.toml"
  # Troupe's lock, so both builds resolve every other crate to the versions Troupe runs.
  [ -f "$dir/Cargo.lock" ] || cp "$ROOT/Cargo.lock" "$dir/Cargo.lock"
  say "building the $1 engine"
  (cd "$dir" && RUSTFLAGS="$3" CARGO_TARGET_DIR="$dir/target" cargo build >&2)
}
build upstream "" "-C target-cpu=x86-64-v3"
build patched "[patch.crates-io]
mistralrs-core = { path = \"$ROOT/src-tauri/vendor/mistralrs-core\" }
candle-core = { path = \"$ROOT/src-tauri/vendor/candle-core\" }" ""

for side in upstream patched; do
  say "running the $side engine"
  "$WORK/$side/target/debug/engine-ab" --model "$WORK/default-model.q8_0.gguf" \
    --prompts "$ROOT/tests/engine-ab/prompts.json" --text "$TEXT" > "$WORK/$side.json"
done

python3 - "$WORK/upstream.json" "$WORK/patched.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
same = [x["name"] for x, y in zip(a["replies"], b["replies"]) if x["reply"] == y["reply"]]
print(f"greedy replies identical: {len(same)} of {len(a['replies'])}")
for x, y in zip(a["replies"], b["replies"]):
    if x["reply"] != y["reply"]:
        print(f"  {x['name']}:\n    upstream {x['reply']!r}\n    patched  {y['reply']!r}")
pa, pb = a["perplexity"], b["perplexity"]
print(f"perplexity over {a['text_tokens']} tokens: upstream {pa:.4f}, patched {pb:.4f} "
      f"({100 * (pb - pa) / pa:+.3f}%)")
d = [abs(x - y) for x, y in zip(a["nll"], b["nll"])]
print(f"per-token log-likelihood: max difference {max(d):.5f}, mean {sum(d) / len(d):.6f} nats")
PY

if [ "${1:-}" = "--write-reference" ]; then
  cp "$WORK/upstream.json" "$ROOT/tests/engine-ab/upstream-reference.json"
  say "wrote tests/engine-ab/upstream-reference.json"
fi
