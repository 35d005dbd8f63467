#!/usr/bin/env python3
"""Benchmark: the gallery with a library of 1,000 Characters, in the real window.

Seeds a fresh data directory with 1,000 Characters (the built-ins' profiles under new names,
each with its own avatar and thumbnail file), starts the real app through WebKitWebDriver under
Xvfb, and prints:
  - when the gallery's data arrived and when its first frame with cards was painted
    (milliseconds since the page started loading, from the page's own performance marks);
  - scrolling the whole grid, top to bottom at 100 px a frame (a fast mouse wheel), then at
    600 px a frame (a fling): frames, median / 95th-percentile / worst frame interval. (Under
    Xvfb the webview paints in software: an idle frame is 16 ms, a frame that paints a new row
    of cards 25 ms or more.)
  - typing a search: time until the filtered grid is painted.
Prints figures only; it asserts that all 1,000 cards are there and the last one is reachable.

Usage (inside Xvfb and a D-Bus session, as .ci/test does):
    python3 tests/e2e/bench_gallery.py path/to/troupe [N]
Needs TROUPE_MODEL, as a user's app loads its model while the gallery appears.
"""

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_app import WebDriver, wait_for_app_exit  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def seed(binary, data, n):
    env = dict(os.environ, TROUPE_DATA_DIR=data)
    # The CLI creates the database and installs the built-ins (and their thumbnails).
    subprocess.run([binary, "characters"], env=env, check=True, capture_output=True)
    db = sqlite3.connect(os.path.join(data, "troupe.db"))
    rows = db.execute("SELECT data FROM characters").fetchall()
    builtins = [json.loads(r[0]) for r in rows]
    avatars = os.path.join(data, "avatars")
    now = int(time.time() * 1000)
    for i in range(n - len(builtins)):
        c = dict(builtins[i % len(builtins)])
        c["id"] = f"bench-{i:04d}"
        c["name"] = f"{c['name']} {i:04d}"
        c["tags"] = [f"group-{i % 40}", c["category"]]
        src = c["avatar"]
        c["avatar"] = f"bench-{i:04d}.png"
        # Distinct files, as a real library has: the webview cannot share one decoded image.
        shutil.copy(os.path.join(avatars, src), os.path.join(avatars, c["avatar"]))
        shutil.copy(os.path.join(avatars, src.replace(".png", ".thumb.png")),
                    os.path.join(avatars, f"bench-{i:04d}.thumb.png"))
        db.execute("INSERT INTO characters (id, name, category, data, builtin, created_at, updated_at)"
                   " VALUES (?, ?, ?, ?, 0, ?, ?)",
                   (c["id"], c["name"], c["category"], json.dumps(c), now - i, now - i))
    db.commit()
    names = [r[0] for r in db.execute("SELECT name FROM characters")]
    db.close()
    return len(names), max(names, key=str.lower)


SCROLL_JS = """
const done = arguments[arguments.length - 1];
const px = arguments[0];
const g = document.querySelector('.gallery');
const times = [];
let last = performance.now();
function step(now) {
  times.push(now - last); last = now;
  if (g.scrollTop + g.clientHeight >= g.scrollHeight - 2) {
    const cards = document.querySelectorAll('[data-testid=character-card] .name');
    done({times, height: g.scrollHeight, last: cards[cards.length - 1].textContent, drawn: cards.length});
    return;
  }
  g.scrollTop += px;
  requestAnimationFrame(step);
}
requestAnimationFrame((t) => { last = t; requestAnimationFrame(step); });
"""

SEARCH_JS = """
const done = arguments[arguments.length - 1];
const i = document.querySelector('input[type=search]');
const t0 = performance.now();
i.value = arguments[0];
i.dispatchEvent(new Event('input', {bubbles: true}));
requestAnimationFrame(() => setTimeout(() => done({
  ms: performance.now() - t0,
  shown: document.querySelectorAll('[data-testid=character-card]').length})));
"""


def main():
    binary = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    data = tempfile.mkdtemp(prefix="troupe-bench-gallery-")
    try:
        total, last_name = seed(binary, data, n)
        # A returning user's library: the first-run welcome is not in the way.
        path = os.path.join(data, "settings.json")
        settings = json.load(open(path)) if os.path.exists(path) else {}
        settings["welcomed"] = True
        with open(path, "w") as f:
            json.dump(settings, f)
        env = dict(os.environ, TAURI_WEBVIEW_AUTOMATION="true", NO_AT_BRIDGE="1", TROUPE_DATA_DIR=data)
        for bad in ("WEBKIT_DISABLE_COMPOSITING_MODE", "WEBKIT_DISABLE_DMABUF_RENDERER"):
            env.pop(bad, None)
        t0 = time.time()
        wd = WebDriver(binary, env)
        try:
            wd.wait("the gallery", lambda: wd.find("[data-testid=character-card]"), timeout=60)
            wall = time.time() - t0
            marks = wd.wait("the paint mark", lambda: wd.js(
                "const m = n => (performance.getEntriesByName(n)[0] || {}).startTime;"
                "const p = m('gallery-painted'); return p && {data: m('gallery-data'), painted: p,"
                " cards: document.querySelectorAll('[data-testid=character-card]').length}"), timeout=30)
            marks["lastName"] = last_name
            wd.request("POST", f"/session/{wd.sid}/timeouts", {"script": 120000})
            # Scrolling is timed once the model has loaded (loading takes both cores for a few
            # seconds), first over pictures never shown, then again over the same ones.
            wd.wait("the model", lambda: wd.js(
                "const e = document.querySelector('[data-testid=engine-status]'); return e && e.dataset.state") == "ready",
                timeout=120)
            scroll = wd.s("POST", "/execute/async", {"script": SCROLL_JS, "args": [100]})
            frames = scroll["times"]
            wd.js("document.querySelector('.gallery').scrollTop = 0")
            time.sleep(0.5)
            fling = wd.s("POST", "/execute/async", {"script": SCROLL_JS, "args": [600]})["times"]
            # Sorted by name (nobody chatted yet): the last card is the last name.
            assert scroll["last"] == marks["lastName"], (scroll["last"], marks["lastName"])
            search = wd.s("POST", "/execute/async", {"script": SEARCH_JS, "args": ["0777"]})
            assert search["shown"] == 1, search
            clear = wd.s("POST", "/execute/async", {"script": SEARCH_JS, "args": [""]})
            def frame_figures(frames):
                q = statistics.quantiles(frames, n=20)
                return (f"{len(frames)} frames, median {statistics.median(frames):.1f} ms, p95 {q[18]:.1f} ms, "
                        f"worst {max(frames):.1f} ms")
            print(f"gallery with {total} characters (thumbnails 128 px, each its own file):")
            print(f"  launch to first cards (wall, WebDriver session start included): {wall:.2f} s")
            print(f"  page: data at {marks['data']:.0f} ms, first frame with cards painted at {marks['painted']:.0f} ms "
                  f"({marks['cards']} cards drawn, the rest as the grid scrolls to them)")
            print(f"  scroll top to bottom ({scroll['height']} px) at 100 px a frame (a fast wheel), "
                  f"pictures not seen before: {frame_figures(frames)}")
            print(f"  again at 600 px a frame (a fling), pictures seen: {frame_figures(fling)}")
            print(f"  search '0777' painted in {search['ms']:.0f} ms ({search['shown']} shown); "
                  f"clearing it, all {clear['shown']} painted in {clear['ms']:.0f} ms")
        finally:
            wd.quit()
            wait_for_app_exit(os.path.basename(binary))
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
