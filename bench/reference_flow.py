#!/usr/bin/python3
"""Two equally simple MoA clients for a side-by-side measurement.

--mode reference: the reference project's flow, re-expressed here for
  measurement only: Python threads and blocking HTTP (a new connection per
  call), every proposer of a layer awaited before the next layer starts, each
  later layer and the aggregator given the previous layer's answers in a
  system message, proposers answered whole, the aggregator streamed. Talks to
  an OpenAI-compatible upstream directly (the simulator).
--mode cluster: one streamed chat completion per question through the
  cluster's OpenAI-compatible door (model = the pipeline's name), with the
  same threads and blocking HTTP.

A closed loop of --concurrency threads runs --requests questions (or for
--seconds); prints one JSON line: requests, failed, seconds, requests per
second, end-to-end and answer time-to-first-token p50/p99 in milliseconds.
Uses only Python's standard library (Debian's python3).
"""
import argparse
import http.client
import json
import threading
import time
import urllib.parse

REFERENCES_PROMPT = (
    "Several assistants answered the user's latest message; their answers follow. "
    "Write one answer of your own that keeps what is right in them and drops what is "
    "wrong, without mentioning the assistants.\n\nAnswers:"
)


class Upstream:
    def __init__(self, base_url, timeout):
        u = urllib.parse.urlparse(base_url)
        self.host, self.port = u.hostname, u.port or 80
        self.path = u.path.rstrip("/") + "/chat/completions"
        self.timeout = timeout

    def _post(self, body):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        conn.request("POST", self.path, json.dumps(body),
                     {"Content-Type": "application/json"})
        return conn, conn.getresponse()

    def complete(self, model, messages, temperature=0.7, max_tokens=512):
        """A whole answer (the reference's proposer calls)."""
        conn, resp = self._post({"model": model, "messages": messages,
                                 "temperature": temperature, "max_tokens": max_tokens})
        try:
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
            return json.loads(data)["choices"][0]["message"]["content"]
        finally:
            conn.close()

    def stream(self, model, messages, temperature=0.7, max_tokens=512):
        """A streamed answer: (text, seconds to its first content)."""
        start = time.monotonic()
        conn, resp = self._post({"model": model, "messages": messages, "stream": True,
                                 "temperature": temperature, "max_tokens": max_tokens})
        try:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:200]!r}")
            first, parts = None, []
            for line in resp:
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    break
                event = json.loads(payload)
                if "error" in event:
                    raise RuntimeError(f"stream error: {event['error']}")
                for choice in event.get("choices", []):
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        if first is None:
                            first = time.monotonic() - start
                        parts.append(piece)
            return "".join(parts), first if first is not None else time.monotonic() - start
        finally:
            conn.close()


def with_references(messages, references):
    if not references:
        return messages
    system = REFERENCES_PROMPT + "".join(
        f"\n{i}. {text}" for i, text in enumerate(references, 1))
    return [{"role": "system", "content": system}] + messages


def reference_moa(upstream, question, proposers, aggregator, rounds):
    """Returns (answer, seconds to the answer's first token from the start)."""
    start = time.monotonic()
    messages = [{"role": "user", "content": question}]
    references = []
    for _ in range(rounds):
        answers = [None] * len(proposers)

        def ask(i, model, refs=references):
            try:
                answers[i] = upstream.complete(model, with_references(messages, refs))
            except Exception:  # A failed proposer is left out, as in the reference.
                answers[i] = None

        threads = [threading.Thread(target=ask, args=(i, m)) for i, m in enumerate(proposers)]
        for t in threads:
            t.start()
        for t in threads:  # Every proposer awaited.
            t.join()
        references = [a for a in answers if a is not None]
    before = time.monotonic() - start
    text, ttft = upstream.stream(aggregator, with_references(messages, references))
    return text, before + ttft


def percentile(values, q):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["reference", "cluster"], required=True)
    p.add_argument("--base_url", required=True)
    p.add_argument("--model", default="moa", help="cluster: the pipeline")
    p.add_argument("--proposers", default="a,b,c,d")
    p.add_argument("--aggregator", default="z")
    p.add_argument("--rounds", type=int, default=1, help="reference: proposer layers")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--seconds", type=float, default=0, help="run for this long instead")
    p.add_argument("--timeout", type=float, default=600)
    a = p.parse_args()
    upstream = Upstream(a.base_url, a.timeout)
    proposers = a.proposers.split(",")

    lock = threading.Lock()
    issued = [0]
    e2e, ttfts, failed = [], [], [0]
    start = time.monotonic()

    def more():
        with lock:
            if a.seconds > 0:
                if time.monotonic() - start >= a.seconds:
                    return None
            elif issued[0] >= a.requests:
                return None
            issued[0] += 1
            return issued[0]

    def worker():
        while (n := more()) is not None:
            question = f"Reference-flow question {n}"
            t0 = time.monotonic()
            try:
                if a.mode == "reference":
                    _, ttft = reference_moa(upstream, question, proposers, a.aggregator,
                                            a.rounds)
                else:
                    _, ttft = upstream.stream(a.model, [{"role": "user", "content": question}])
                done = time.monotonic() - t0
                with lock:
                    e2e.append(done)
                    ttfts.append(ttft)
            except Exception:
                with lock:
                    failed[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - start
    print(json.dumps({
        "mode": a.mode, "requests": len(e2e) + failed[0], "failed": failed[0],
        "seconds": round(seconds, 3), "per_second": round(len(e2e) / seconds, 2),
        "e2e_p50_ms": round(percentile(e2e, 0.5) * 1000, 1),
        "e2e_p99_ms": round(percentile(e2e, 0.99) * 1000, 1),
        "ttft_p50_ms": round(percentile(ttfts, 0.5) * 1000, 1),
        "ttft_p99_ms": round(percentile(ttfts, 0.99) * 1000, 1),
    }))


if __name__ == "__main__":
    main()
