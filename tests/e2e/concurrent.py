#!/usr/bin/env python3
"""The window and the CLI writing to the same library at once, for a while (a figure, not a CI
step): the window chats with one Character while the CLI, in a loop, chats with another and
imports cards. Afterwards every message either side sent is in SQLite, every import is there,
no command failed ("database is locked" or otherwise), the window showed no error, and
`PRAGMA integrity_check` is ok.

Usage (inside Xvfb and a D-Bus session, as .ci/test runs the e2e test):
    python3 tests/e2e/concurrent.py path/to/troupe [SECONDS]
Needs TROUPE_MODEL. Prints the figures. Stdlib only.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_app import ENTER, WebDriver, engine_state, messages, wait_for_app_exit  # noqa: E402

CARDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "cards")


def cli_side(binary, env, until, out):
    """Chats and imports in a loop until `until`; records every command's outcome."""
    cards = [os.path.join(CARDS, c) for c in ("wren-v2.json", "tobias-v1.json", "odile-v2.png")]
    i = 0
    while time.time() < until:
        i += 1
        if i % 3 == 0:
            args = ["import", cards[i % len(cards)]]
            out["imports"] += 1
        else:
            args = ["chat", "--character", "marie-curie", f"cli message {i}"]
            out["chats"] += 1
        r = subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            out["failures"].append((args, r.stderr.strip()[-300:]))


def main():
    binary = os.path.abspath(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60
    model = os.environ["TROUPE_MODEL"]
    data = tempfile.mkdtemp(prefix="troupe-concurrent-")
    with open(os.path.join(data, "settings.json"), "w") as f:
        json.dump({"sampling": {"maxTokens": 24, "temperature": 0.7}, "welcomed": True}, f)
    env = dict(os.environ, TAURI_WEBVIEW_AUTOMATION="true", NO_AT_BRIDGE="1", TROUPE_DATA_DIR=data,
               TROUPE_MODEL=model)
    wd = WebDriver(binary, env)
    cli = {"chats": 0, "imports": 0, "failures": []}
    sent = 0
    errors = []
    try:
        wd.wait("gallery", lambda: wd.find("[data-testid=character-card]"), timeout=60)
        wd.click("[data-testid=character-card][data-id=sherlock-holmes]")
        wd.wait("the scenario picker", lambda: wd.find("[data-testid=scenario-picker]"))
        wd.click("[data-testid=scenario][data-scenario=chit_chat]")
        wd.wait("the greeting", lambda: messages(wd))
        wd.wait("the model", lambda: engine_state(wd) == "ready", timeout=120)

        until = time.time() + seconds
        side = threading.Thread(target=cli_side, args=(binary, env, until, cli))
        side.start()
        while time.time() < until:
            n = len(messages(wd))
            sent += 1
            wd.type("[data-testid=composer]", f"window message {sent}" + ENTER)
            wd.wait("the reply", lambda: len(messages(wd)) >= n + 2
                    and messages(wd)[-1]["status"] != "streaming", timeout=120, every=0.05)
            err = wd.js("const e = document.querySelector('[data-testid=chat-error]'); return e && e.textContent")
            if err:
                errors.append(err)
                wd.js("document.querySelector('[data-testid=chat-error] button').click()")
        side.join()
    finally:
        wd.quit()
        wait_for_app_exit(os.path.basename(binary))

    db = sqlite3.connect(os.path.join(data, "troupe.db"))
    count = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    # The person's messages only: a small model's reply may echo "window message 7" back.
    window_stored = count("SELECT count(*) FROM messages WHERE role = 'user' AND content LIKE 'window message %'")
    cli_stored = count("SELECT count(*) FROM messages WHERE role = 'user' AND content LIKE 'cli message %'")
    replies = count("SELECT count(*) FROM messages WHERE role = 'character' AND status != 'streaming'")
    imported = count("SELECT count(*) FROM characters WHERE builtin = 0")
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    shutil.rmtree(data, ignore_errors=True)

    print(f"figures: {seconds:.0f} s of the window and the CLI writing at once: the window sent {sent} "
          f"messages ({window_stored} stored), the CLI ran {cli['chats']} chats ({cli_stored} stored) and "
          f"{cli['imports']} imports ({imported} Characters added); {replies} replies stored; "
          f"{len(cli['failures'])} CLI failures, {len(errors)} window errors; integrity_check {integrity}")
    ok = (window_stored == sent and cli_stored == cli["chats"] and imported == cli["imports"]
          and not cli["failures"] and not errors and integrity == "ok")
    for f in cli["failures"]:
        print("CLI failure:", f)
    for e in errors:
        print("window error:", e)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
