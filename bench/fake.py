#!/usr/bin/env python3
"""bench/fake.py: tests/fake-nessus/fake_nessus.py, unchanged but for one
thing: its connections set TCP_NODELAY.

The fake answers with two writes (headers, then body). Without
TCP_NODELAY, Nagle's algorithm holds the body until the client acknowledges
the headers, and the client delays that ACK by up to 40 ms: a stall of the
test double, not of np or of a real scanner, that would otherwise add
tens of milliseconds to many requests of every scan in the dispatch
benchmark. Same arguments as fake_nessus.py.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "fake-nessus"))
import fake_nessus  # noqa: E402

fake_nessus.Handler.disable_nagle_algorithm = True

if __name__ == "__main__":
    fake_nessus.main()
