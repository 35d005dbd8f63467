#!/usr/bin/env python3
"""Checks that every build CI makes reuses the window build's dependencies: the headless build
(`--no-default-features`), the tests (`cargo test -p troupe`) and the vendored crates' own unit
tests may differ from it only in their own crate (and the tests' dev-dependencies). Cargo
compiles a dependency once per set of features; a feature that only one build turns on makes
that build compile mistral.rs and candle again (about 20 minutes on 2 cores). The fix is a
feature pin in src-tauri/Cargo.toml ("Feature pins").

Reads cargo's unit graphs (`--unit-graph`, which builds nothing; it is an unstable flag, so
RUSTC_BOOTSTRAP=1 lets the stable cargo print it). Prints what differs and exits 1 if anything
beyond the allowed units does. Run from the repository root."""

import json
import os
import subprocess
import sys


def unit_graph(args):
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    out = subprocess.run(["cargo", *args, "--unit-graph", "-Z", "unstable-options"],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["units"]


def identities(units):
    """Each unit's identity: its package, target, mode, features, profile settings (not the
    profile's name: `test` inherits `dev`) and, recursively, its dependencies'."""
    memo = {}

    def ident(i):
        if i not in memo:
            u = units[i]
            profile = {k: v for k, v in u["profile"].items() if k != "name"}
            deps = tuple(sorted(ident(d["index"]) for d in u["dependencies"]))
            memo[i] = hash((u["pkg_id"], u["target"]["name"], tuple(u["target"]["kind"]),
                            u["mode"], tuple(sorted(u["features"])),
                            json.dumps(profile, sort_keys=True), deps))
        return memo[i]
    sys.setrecursionlimit(100_000)
    return [ident(i) for i in range(len(units))]


def package(u):
    name = u["pkg_id"].split("#")[-1]
    # Path packages are named by their folder: ".../src-tauri#troupe@0.1.0" or ".../mistralrs-core#0.8.1".
    if "@" not in name:
        name = u["pkg_id"].split("#")[0].rstrip("/").split("/")[-1]
    return name.split("@")[0]


def main():
    window = unit_graph(["build", "-p", "troupe"])
    shared = set(identities(window))
    checks = [
        (["build", "-p", "troupe", "--no-default-features"], {"troupe"}),
        (["test", "-p", "troupe", "--no-run"], {"troupe", "tempfile"}),
        (["test", "-p", "candle-core", "--lib", "--no-run"], {"candle-core"}),
        (["test", "-p", "mistralrs-core", "--lib", "--no-run"], {"mistralrs-core"}),
    ]
    failed = False
    for args, allowed in checks:
        units = unit_graph(args)
        own = [u for u, i in zip(units, identities(units)) if i not in shared]
        extra = sorted({package(u) for u in own} - allowed)
        print(f"cargo {' '.join(args)}: {len(units)} units, {len(own)} not shared with the "
              f"window build ({', '.join(sorted({package(u) for u in own}))})")
        if extra:
            failed = True
            print(f"  compiles again: {', '.join(extra)}; pin their features in src-tauri/Cargo.toml")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
