"""The window's own weight (issue 24): resident memory of Troupe's process and of WebKit's
web and network processes, idle on the gallery with no model, idle with the default model
loaded, and a bare Tauri window of the same size showing a static page (the baseline WebKit's
processes are judged against). A fresh library each time; figures are VmRSS after the window
has settled (25 s, or until the model is loaded and memory holds still).

    xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- \\
        python3 tests/e2e/window_memory.py $CARGO_TARGET_DIR/debug/troupe \\
        $CARGO_TARGET_DIR/debug/examples/bare_window [--json]

TROUPE_MODEL names the model for the loaded case (the default model, as .ci/test sets it).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

SETTLE_S = 25


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(root):
    """Every process under `root`, as {pid: name}."""
    parent = {}
    names = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
            with open(f"/proc/{p}/comm") as f:
                names[int(p)] = f.read().strip()
        except OSError:
            continue
        # The name in parentheses may hold spaces; the parent pid follows the closing one.
        parent[int(p)] = int(stat[stat.rindex(")") + 2:].split()[1])
    found = {}
    for pid in parent:
        at = pid
        while at in parent and at not in (0, 1):
            if parent[at] == root:
                found[pid] = names.get(pid, "?")
                break
            at = parent[at]
    return found


def kind(name):
    if name.startswith("WebKitWebProces"):
        return "web"
    if name.startswith("WebKitNetworkPr"):
        return "network"
    return "other"


def measure(argv, env, until_still=False):
    """Starts `argv`, lets it settle, returns MB per process kind."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(SETTLE_S)
        if until_still:
            # Loading a model: wait until the app's memory has held still for 10 s (2 min at most).
            last, still, t0 = rss_mb(proc.pid), 0, time.time()
            while still < 10 and time.time() - t0 < 120:
                time.sleep(2)
                now = rss_mb(proc.pid)
                still = still + 2 if abs(now - last) < 2 else 0
                last = now
        out = {"app": round(rss_mb(proc.pid)), "web": 0, "network": 0, "other": 0}
        for pid, name in descendants(proc.pid).items():
            out[kind(name)] += round(rss_mb(pid))
        out["total"] = out["app"] + out["web"] + out["network"] + out["other"]
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    troupe, bare = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    model = os.environ.get("TROUPE_MODEL", "")
    base = dict(os.environ, NO_AT_BRIDGE="1", TROUPE_KEYRING="off")

    def fresh(**extra):
        data = tempfile.mkdtemp(prefix="troupe-mem-")
        with open(os.path.join(data, "settings.json"), "w") as f:
            json.dump({"welcomed": True}, f)
        return dict(base, TROUPE_DATA_DIR=data, **extra)

    rows = {
        "bare Tauri window, static page": measure([bare], base),
        "Troupe, gallery, no model": measure([troupe], fresh(TROUPE_MODEL="/nonexistent.gguf")),
    }
    if model and os.path.isfile(model):
        rows["Troupe, gallery, model loaded"] = measure([troupe], fresh(TROUPE_MODEL=model), until_still=True)
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'':34}{'app':>8}{'WebKit web':>12}{'network':>10}{'total':>8}   (MB, VmRSS)")
    for name, r in rows.items():
        print(f"{name:34}{r['app']:>8}{r['web']:>12}{r['network']:>10}{r['total']:>8}")
    b = rows["bare Tauri window, static page"]
    t = rows["Troupe, gallery, no model"]
    webkit = lambda r: r["web"] + r["network"]
    if webkit(b):
        print(f"WebKit's processes: {webkit(t) / webkit(b):.2f}x the bare window's (target: at most 1.25x)")


if __name__ == "__main__":
    main()
