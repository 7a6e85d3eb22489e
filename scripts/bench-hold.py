#!/usr/bin/env python3
"""Holds N idle proxied connections open, for scripts/bench's memory scenario.

    scripts/bench-hold.py HOST PORT N [TIMEOUT_S] [SOURCES]

Opens N TCP connections to HOST:PORT (at most 200 connecting at once, so no
listen backlog overflows), sends one small HTTP request on each and reads its
whole answer, so that every connection has really gone through the proxy to a
backend and back. It then prints "ready N" on stdout and holds them all open
and idle until it is killed. A connection the other side closes while held is
reported as "lost" on stdout. If not all N have their answer within TIMEOUT_S
(default 60) it prints "failed: ..." and exits 1.

One source address has about 28,000 ephemeral ports towards one HOST:PORT
(net.ipv4.ip_local_port_range), so more connections than that need more
sources: with SOURCES > 1 (HOST on 127.0.0.0/8 only) connection i is bound
to 127.0.0.(1 + i % SOURCES) first; 4 sources hold 100,000.
"""
import os
import resource
import selectors
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
IN_FLIGHT = 200


def answer_complete(data):
    """Whether data holds a whole HTTP answer (its head and Content-Length body)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in data[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(data) >= end + 4 + length


def main():
    if len(sys.argv) not in (4, 5, 6):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) >= 5 else 60.0
    sources = int(sys.argv[5]) if len(sys.argv) == 6 else 1
    if sources < 1 or sources > 254 or (sources > 1 and not host.startswith("127.")):
        sys.exit("bench-hold: SOURCES is 1..254, and more than 1 needs HOST on 127.0.0.0/8")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))

    sel = selectors.DefaultSelector()
    started = answered = 0
    pending = {}  # socket -> bytes of its answer so far, while not complete
    held = []
    deadline = time.monotonic() + timeout

    def start_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if sources > 1:
            s.bind(("127.0.0.%d" % (1 + started % sources), 0))
        s.setblocking(False)
        s.connect_ex((host, port))
        sel.register(s, selectors.EVENT_WRITE)
        pending[s] = None  # None: still connecting

    # Phase 1: connect, send a request, read its answer; IN_FLIGHT at a time.
    while answered < n:
        while started < n and len(pending) < IN_FLIGHT:
            start_one()
            started += 1
        if time.monotonic() > deadline:
            print(f"failed: {answered} of {n} connections answered in {timeout:g} s", flush=True)
            sys.exit(1)
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            if pending[s] is None:  # the connect finished
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    print(f"failed: connect: {os.strerror(err)}", flush=True)
                    sys.exit(1)
                s.send(REQUEST)
                pending[s] = b""
                sel.modify(s, selectors.EVENT_READ)
                continue
            chunk = s.recv(65536)
            if not chunk:
                print(f"failed: a connection closed before its answer ({answered} answered)", flush=True)
                sys.exit(1)
            pending[s] += chunk
            if answer_complete(pending[s]):
                del pending[s]
                held.append(s)
                answered += 1

    # Phase 2: hold them idle; any of them becoming readable means it closed.
    print(f"ready {len(held)}", flush=True)
    while True:
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                sel.unregister(s)
                print("lost", flush=True)


if __name__ == "__main__":
    main()
