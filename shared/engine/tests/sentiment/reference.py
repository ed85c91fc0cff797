#!/usr/bin/env python3
"""The reference side of tests/sentiment_vader.rs: VADER scores from vaderSentiment 3.3.2.

Reads JSON lines on stdin, each {"t": text} or {"b": hex of raw bytes, decoded as UTF-8 with
replacement}, and writes one JSON line [neg, neu, pos, compound] per input, floats in repr form
(round-trip exact). Exits non-zero, saying what to install, when the pinned package is missing.
"""
import json
import sys
from importlib import metadata

PIN = "3.3.2"

try:
    version = metadata.version("vaderSentiment")
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
except Exception as e:  # ImportError or PackageNotFoundError
    sys.exit(f"vaderSentiment is not installed ({e}): python3 -m pip install vadersentiment=={PIN}")
if version != PIN:
    sys.exit(f"vaderSentiment {version} is installed, the test needs {PIN}: "
             f"python3 -m pip install vadersentiment=={PIN}")

analyzer = SentimentIntensityAnalyzer()
out = []
for line in sys.stdin:
    item = json.loads(line)
    text = item["t"] if "t" in item else bytes.fromhex(item["b"]).decode("utf-8", "replace")
    s = analyzer.polarity_scores(text)
    out.append(json.dumps([s["neg"], s["neu"], s["pos"], s["compound"]]))
sys.stdout.write("\n".join(out) + ("\n" if out else ""))
