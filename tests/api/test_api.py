"""The local API, driven the way people drive it: `troupe serve` with the real default model, the
official `openai` Python package and `curl`, plus one test per refusal and per kind of bad input.

Usage: python tests/api/test_api.py path/to/troupe   (needs TROUPE_MODEL; .ci/test runs it with
the virtual environment `install_api_client` makes). Prints the figures it measures (time to
first token through the API and the CLI, the queue with four clients) for the issue's note.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import openai
from openai import OpenAI

BINARY = None
KEY = "test-key-for-the-api-0123456789"
CHARACTER = "troupe/ada-lovelace"


class Server:
    """`troupe serve` in a fresh data directory, on a free port."""

    def __init__(self, binary, extra=(), env=None):
        self.dir = tempfile.mkdtemp(prefix="troupe-api-")
        self.env = dict(os.environ, TROUPE_DATA_DIR=self.dir, TROUPE_KEYRING="off",
                        TROUPE_API_KEY=KEY, **(env or {}))
        self.proc = subprocess.Popen(
            [binary, "serve", "--port", "0", *extra],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://([\d.]+):(\d+)/v1", line)
        assert m, f"no address in {line!r}: {self.proc.stderr.read()}"
        self.host, self.port = m.group(1), int(m.group(2))
        self.base = f"http://{self.host}:{self.port}/v1"
        deadline = time.time() + 120
        while time.time() < deadline:
            err = self.proc.stderr.readline()
            if "[model ready" in err:
                break
            assert "did not load" not in err, err
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        self.client = OpenAI(base_url=self.base, api_key=KEY, max_retries=0, timeout=300)

    def raw_model(self):
        return [m.id for m in self.client.models.list() if not m.id.startswith("troupe/")][0]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def http(method, url, body=None, headers=None):
    """(status, headers, parsed JSON body) without raising on errors."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, r.headers, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"null")


def post(url, payload, key=KEY, content_type="application/json", extra=None):
    headers = {"Content-Type": content_type, **(extra or {})}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return http("POST", url, body, headers)


SERVER = None


def setUpModule():
    global SERVER
    SERVER = Server(BINARY)


def tearDownModule():
    SERVER.stop()


class Api(unittest.TestCase):
    @property
    def server(self):
        return SERVER

    # --- the models ---------------------------------------------------------------------------

    def test_models_are_the_loaded_model_and_every_character(self):
        ids = {m.id: m for m in self.server.client.models.list()}
        self.assertIn(CHARACTER, ids)
        self.assertIn("troupe/sherlock-holmes", ids)
        self.assertEqual(ids[CHARACTER].model_extra.get("name"), "Ada Lovelace")
        raw = [i for i in ids if not i.startswith("troupe/")]
        self.assertEqual(len(raw), 1, ids.keys())
        self.assertEqual(self.server.client.models.retrieve(CHARACTER).id, CHARACTER)

    # --- a Character as a model -----------------------------------------------------------------

    def test_a_character_answers_in_character_whole(self):
        r = self.server.client.chat.completions.create(
            model=CHARACTER, max_tokens=48, seed=1,
            messages=[{"role": "user", "content": "What is your name?"}])
        text = r.choices[0].message.content
        self.assertIn("Ada", text)
        self.assertIn(r.choices[0].finish_reason, ("stop", "length"))
        # The profile is in the prompt: hundreds of tokens for a five-word question.
        self.assertGreater(r.usage.prompt_tokens, 300)
        self.assertGreater(r.usage.completion_tokens, 0)
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens)

    def test_a_character_streams_with_usage(self):
        stream = self.server.client.chat.completions.create(
            model="troupe/sherlock-holmes", max_tokens=40, stream=True, seed=2,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Good evening. Who are you?"}])
        pieces, finish, usage = [], None, None
        for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage
        self.assertGreater(len(pieces), 3)
        self.assertTrue("".join(pieces).strip())
        self.assertIn(finish, ("stop", "length"))
        self.assertIsNotNone(usage)
        self.assertGreater(usage.prompt_tokens, 300)

    def test_a_client_system_message_is_a_note_not_a_new_character(self):
        plain = self.server.client.chat.completions.create(
            model=CHARACTER, max_tokens=1,
            messages=[{"role": "user", "content": "Hello."}])
        noted = self.server.client.chat.completions.create(
            model=CHARACTER, max_tokens=1,
            messages=[{"role": "system", "content": "You are a pirate called Bob."},
                      {"role": "user", "content": "Hello."}])
        # The note is added to the Character's prompt, which stays (a replacement would be
        # far shorter than the profile).
        self.assertGreater(noted.usage.prompt_tokens, plain.usage.prompt_tokens)
        self.assertLess(noted.usage.prompt_tokens - plain.usage.prompt_tokens, 40)

    def test_the_scenario_and_history_come_from_the_request(self):
        history = [{"role": "user", "content": "My name is Priya and I keep bees."},
                   {"role": "assistant", "content": "How lovely, Priya. Bees are wonderful."},
                   {"role": "user", "content": "Thank you."}]
        chat = self.server.client.chat.completions.create(
            model=CHARACTER, max_tokens=1, messages=history[-1:])
        longer = self.server.client.chat.completions.create(
            model=CHARACTER, max_tokens=1, messages=history,
            extra_body={"troupe": {"scenario": "interview"}})
        self.assertGreater(longer.usage.prompt_tokens, chat.usage.prompt_tokens + 20)

    # --- the raw model ---------------------------------------------------------------------------

    def test_the_raw_model_answers_its_own_messages(self):
        r = self.server.client.chat.completions.create(
            model=self.server.raw_model(), max_tokens=8, temperature=0,
            messages=[{"role": "system", "content": "Answer with one word."},
                      {"role": "user", "content": "What is the capital of France?"}])
        self.assertIn("paris", r.choices[0].message.content.lower())
        self.assertLess(r.usage.prompt_tokens, 60)

    def test_completions_continue_plain_text(self):
        r = self.server.client.completions.create(
            model=self.server.raw_model(), prompt="The capital of France is", max_tokens=4,
            temperature=0)
        self.assertIn("Paris", r.choices[0].text)
        self.assertEqual(r.usage.prompt_tokens, 5)
        pieces = [c.choices[0].text for c in self.server.client.completions.create(
            model=self.server.raw_model(), prompt="1, 2, 3,", max_tokens=6, stream=True)
            if c.choices]
        self.assertTrue("".join(pieces).strip())

    def test_a_character_is_not_a_text_completion_model(self):
        with self.assertRaises(openai.BadRequestError) as e:
            self.server.client.completions.create(model=CHARACTER, prompt="Hi", max_tokens=2)
        self.assertIn("chat/completions", str(e.exception))

    def test_curl_whole_and_streamed(self):
        body = json.dumps({"model": CHARACTER, "max_tokens": 24,
                           "messages": [{"role": "user", "content": "Hello!"}]})
        base = ["curl", "-sS", "-H", f"Authorization: Bearer {KEY}",
                "-H", "Content-Type: application/json"]
        whole = subprocess.run(base + [f"{self.server.base}/chat/completions", "-d", body],
                               capture_output=True, text=True, check=True)
        reply = json.loads(whole.stdout)
        self.assertEqual(reply["object"], "chat.completion")
        self.assertTrue(reply["choices"][0]["message"]["content"])
        streamed = subprocess.run(
            base + ["-N", f"{self.server.base}/chat/completions",
                    "-d", body.replace('"max_tokens"', '"stream": true, "max_tokens"')],
            capture_output=True, text=True, check=True)
        events = [l[6:] for l in streamed.stdout.splitlines() if l.startswith("data: ")]
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertTrue(all(c["object"] == "chat.completion.chunk" for c in chunks))
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        self.assertIsNotNone(chunks[-1]["choices"][0]["finish_reason"])

    # --- refusals: each a clear OpenAI-style error, and the server keeps serving ---------------

    def refused(self, status, code, *args, **kwargs):
        got, headers, body = post(f"{self.server.base}/chat/completions", *args, **kwargs)
        self.assertEqual(got, status, body)
        self.assertEqual(body["error"]["code"], code, body)
        self.assertTrue(body["error"]["message"])
        return headers, body

    def hello(self, model=CHARACTER):
        return {"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}

    def test_no_key(self):
        self.refused(401, "missing_api_key", self.hello(), key=None)

    def test_wrong_key(self):
        self.refused(401, "invalid_api_key", self.hello(), key="not-the-key-at-all-0000")

    def test_foreign_host(self):
        # DNS rebinding: a page served from a name the attacker controls, resolved to 127.0.0.1.
        self.refused(403, "invalid_host", self.hello(), extra={"Host": "attacker.example:80"})

    def test_text_plain_body(self):
        self.refused(415, "unsupported_media_type", self.hello(), content_type="text/plain")

    def test_form_body(self):
        self.refused(415, "unsupported_media_type", b"model=x",
                     content_type="application/x-www-form-urlencoded")

    def test_oversize_body(self):
        # curl, which reads the answer while it still sends (the server refuses before reading
        # 10 MB, and a client that only reads after sending sees the connection close).
        big = self.hello()
        big["messages"][0]["content"] = "x" * (10 * 1024 * 1024)
        path = os.path.join(self.server.dir, "big.json")
        with open(path, "w") as f:
            json.dump(big, f)
        r = subprocess.run(["curl", "-sS", "-w", "\\n%{http_code}", "-H", f"Authorization: Bearer {KEY}",
                            "-H", "Content-Type: application/json", "--data-binary", f"@{path}",
                            f"{self.server.base}/chat/completions"],
                           capture_output=True, text=True)
        body, status = r.stdout.rsplit("\n", 1)
        self.assertEqual(status, "413", r.stdout + r.stderr)
        self.assertEqual(json.loads(body)["error"]["code"], "request_too_large")

    def test_unknown_model(self):
        self.refused(404, "model_not_found", self.hello("troupe/nobody-at-all"))
        self.refused(404, "model_not_found", self.hello("gpt-4o"))

    def test_malformed_json(self):
        _, body = self.refused(400, "invalid_json", b'{"model": "x", "messages": [')
        self.assertIn("not valid JSON", body["error"]["message"])

    def test_no_user_turn(self):
        self.refused(400, "invalid_value", {"model": CHARACTER, "messages": [
            {"role": "system", "content": "Be nice."}]})
        self.refused(400, "invalid_value", {"model": CHARACTER, "messages": []})

    def test_unknown_role(self):
        _, body = self.refused(400, "invalid_value", {"model": CHARACTER, "messages": [
            {"role": "wizard", "content": "Hi"}]})
        self.assertIn("wizard", body["error"]["message"])

    def test_more_than_one_choice(self):
        request = self.hello()
        request["n"] = 2
        _, body = self.refused(400, "invalid_value", request)
        self.assertEqual(body["error"]["param"], "n")

    def test_cross_site_preflight_is_refused(self):
        status, headers, body = http("OPTIONS", f"{self.server.base}/chat/completions", None,
                                     {"Origin": "https://evil.example",
                                      "Access-Control-Request-Method": "POST"})
        self.assertEqual(status, 403)
        self.assertIsNone(headers.get("Access-Control-Allow-Origin"))

    def test_the_server_keeps_serving_after_bad_input(self):
        for bad in (b"\xff\xfe", b"null", b"[]", b'{"model": 1}', b"{" * 10000):
            post(f"{self.server.base}/chat/completions", bad)
        self.assertTrue(list(self.server.client.models.list()))

    # --- the queue -------------------------------------------------------------------------------

    def test_a_client_that_disconnects_frees_the_engine(self):
        for stream in (True, False):
            # A reply that would run for a minute or more...
            s = socket.create_connection((self.server.host, self.server.port))
            # (Greedy counting goes on and on: 3,000 tokens take ~40 s here.)
            body = json.dumps({"model": self.server.raw_model(), "max_tokens": 3000,
                               "temperature": 0, "stream": stream,
                               "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"})
            s.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
            if stream:
                s.recv(100)  # its first words came
            time.sleep(1)
            # ...holds the engine: the next request waits its turn...
            done = threading.Event()
            threading.Thread(target=lambda: (self.server.client.chat.completions.create(
                model=self.server.raw_model(), max_tokens=4,
                messages=[{"role": "user", "content": "Say hi."}]), done.set()),
                daemon=True).start()
            self.assertFalse(done.wait(3), f"the long reply (stream={stream}) was not running")
            # ...until its client goes away.
            left = time.time()
            s.close()
            self.assertTrue(done.wait(20), f"the dropped reply (stream={stream}) kept the engine")
            print(f"  after a client left (stream={stream}), the waiting reply was done "
                  f"{time.time() - left:.1f} s later", file=sys.stderr)

    def test_four_clients_take_turns_and_a_full_queue_says_when_to_come_back(self):
        results = {}

        def client(i, max_tokens):
            t0 = time.time()
            status, headers, body = post(f"{self.server.base}/chat/completions", {
                "model": CHARACTER, "max_tokens": max_tokens, "seed": i,
                "messages": [{"role": "user", "content": f"Tell me about day {i} of your week."}]})
            results[i] = (status, headers.get("Retry-After"), t0, time.time(), body)

        threads = [threading.Thread(target=client, args=(i, 24)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t0 = min(r[2] for r in results.values())
        ends = sorted(r[3] - t0 for r in results.values())
        print("  4 clients at once: replies done at " +
              ", ".join(f"{e:.1f} s" for e in ends), file=sys.stderr)
        self.assertEqual([r[0] for r in results.values()], [200] * 4)
        # One at a time: the last ends well after the first.
        self.assertGreater(ends[-1], ends[0] * 1.5)

        results.clear()
        threads = [threading.Thread(target=client, args=(i, 40)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(r[0] for r in results.values())
        self.assertEqual(statuses, [200] * 8 + [503] * 2, statuses)
        for status, retry, *_ in results.values():
            if status == 503:
                self.assertEqual(retry, "5")


class Sessions(unittest.TestCase):
    """A request bound to a stored Session: the exchange is stored and shown in the window."""

    def test_a_bound_request_continues_a_stored_session(self):
        server = SERVER
        env = server.env
        started = subprocess.run(
            [BINARY, "chat", "--character", "ada-lovelace", "--new", "--scenario", "interview",
             "Hello, may I ask you about the Analytical Engine?"],
            env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(started.returncode, 0, started.stderr)
        session = int(re.search(r"\[session (\d+)", started.stderr).group(1))
        r = server.client.chat.completions.create(
            model=CHARACTER, max_tokens=32,
            messages=[{"role": "user", "content": "What did Babbage think of your notes?"}],
            extra_headers={"X-Troupe-Session": str(session)})
        history = subprocess.run([BINARY, "history", "--session", str(session)], env=env,
                                 capture_output=True, text=True, check=True).stdout
        self.assertIn("What did Babbage think of your notes?", history)
        self.assertIn(r.choices[0].message.content.strip()[:30], history)
        self.assertTrue(r.model_extra["troupe"]["message_id"])
        # Another Character's Session, or one that does not exist, is refused.
        status, _, body = post(f"{server.base}/chat/completions", {
            "model": "troupe/sherlock-holmes", "messages": [{"role": "user", "content": "Hi"}],
            "troupe": {"session": session}})
        self.assertEqual(status, 400, body)
        status, _, body = post(f"{server.base}/chat/completions", {
            "model": CHARACTER, "messages": [{"role": "user", "content": "Hi"}],
            "troupe": {"session": 999999}})
        self.assertEqual(status, 404, body)


class Binding(unittest.TestCase):
    def test_listening_beyond_this_computer_needs_the_flag(self):
        env = dict(os.environ, TROUPE_DATA_DIR=tempfile.mkdtemp(), TROUPE_API_KEY=KEY,
                   TROUPE_KEYRING="off")
        r = subprocess.run([BINARY, "serve", "--host", "0.0.0.0", "--port", "0"], env=env,
                           capture_output=True, text=True, timeout=120)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--allow-network", r.stderr)


class Figures(unittest.TestCase):
    """Time to first token and tokens/s through the API against the CLI, same question: what
    the client sees, what the engine measured for the same reply (the difference is the HTTP
    layer and the prompt's assembly), and `troupe chat` in a process of its own. The server
    here keeps no prefix cache, so each of its replies prefills the whole prompt, as a fresh
    CLI process does."""

    def test_the_http_layer_costs_milliseconds(self):
        server = Server(BINARY, env={"TROUPE_PREFIX_CACHE_N": "0"})
        try:
            self.measure(server)
        finally:
            server.stop()

    def measure(self, server):
        question = "Tell me about your work with Charles Babbage."
        rows = []
        for seed in range(3):
            t0 = time.time()
            first, n, engine = None, 0, None
            for chunk in server.client.chat.completions.create(
                    model=CHARACTER, max_tokens=64, seed=seed, stream=True,
                    messages=[{"role": "user", "content": question}]):
                if chunk.choices and chunk.choices[0].delta.content:
                    n += 1
                    first = first or time.time() - t0
                if chunk.model_extra.get("troupe"):
                    engine = chunk.model_extra["troupe"]
            rate = (n - 1) / (time.time() - t0 - first)
            rows.append((first * 1000, engine["first_token_ms"], rate, engine["tokens_per_second"]))
        for client_ms, engine_ms, rate, engine_rate in rows:
            print(f"  API: first token {client_ms:.0f} ms at the client, {engine_ms} ms at the "
                  f"engine; {rate:.1f} tokens/s at the client, {engine_rate} at the engine",
                  file=sys.stderr)
            self.assertGreater(engine_ms, 0)
        for _ in range(2):
            r = subprocess.run(
                [BINARY, "chat", "--character", "ada-lovelace", "--new", question],
                env=server.env, capture_output=True, text=True, timeout=300)
            m = re.search(r"first token (\d+) ms . ([\d.]+) tokens/s", r.stderr)
            self.assertTrue(m, r.stderr)
            print(f"  CLI: first token {m.group(1)} ms, {m.group(2)} tokens/s (a fresh process)",
                  file=sys.stderr)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
