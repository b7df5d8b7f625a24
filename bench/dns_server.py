#!/usr/bin/env python3
"""A private BIND named for the DNS benchmark: authoritative, with wildcards, for every name
policy_load's requests make relaywatchd look up (client PTRs, their A/AAAA, sender and recipient
MX), optionally behind a relay that delays every answer (a slow name server, which named alone
cannot be on demand).

    bench/dns_server.py DIR [--delay SECONDS | --stall]

Prints "port N" (where relaywatchd should send its queries) once ready, then runs until SIGTERM
or SIGINT; everything it started is stopped by PID. Uses tests/dns_servers.py.
"""
import argparse
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import dns_servers  # noqa: E402
from dns_servers import Named, Zone  # noqa: E402


def zones():
    example = (Zone("example", ttl=3600)
               .mx("*", "mx.example").a("*", "127.0.0.25").aaaa("*", "2001:db8::25")
               .a("mx", "127.0.0.25"))
    out = {"example": example,
           "in-addr.arpa": Zone("in-addr.arpa", ttl=3600).ptr("*", "host.example"),
           "ip6.arpa": Zone("ip6.arpa", ttl=3600).ptr("*", "host6.example")}
    for d in ("example.com", "example.net", "example.org"):
        out[d] = Zone(d, ttl=3600).mx("@", "mx.example").mx("*", "mx.example")
    return out


def query_key(data):
    """ID and question of a message: IDs alone collide with a thousand queries in flight."""
    end = 12
    while end < len(data) and data[end] != 0:
        end += 1 + data[end]
    return data[:2] + data[12:end + 5]


def relay(listen, upstream, delay, stop):
    """Forward each query to upstream and its answer back after `delay` seconds."""
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(listen)
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.connect(upstream)
    clients = {}  # query_key -> client address
    pending = []  # (due, data, addr)
    lock = threading.Lock()

    def answers():
        while not stop.is_set():
            try:
                back.settimeout(0.2)
                data = back.recv(65535)
            except socket.timeout:
                continue
            with lock:
                addr = clients.pop(query_key(data), None)
                if addr:
                    pending.append((time.monotonic() + delay, data, addr))

    def sender():
        while not stop.is_set():
            now = time.monotonic()
            with lock:
                due = [p for p in pending if p[0] <= now]
                pending[:] = [p for p in pending if p[0] > now]
            for _, data, addr in due:
                front.sendto(data, addr)
            time.sleep(0.005)

    threading.Thread(target=answers, daemon=True).start()
    threading.Thread(target=sender, daemon=True).start()
    front.settimeout(0.2)
    while not stop.is_set():
        try:
            data, addr = front.recvfrom(65535)
        except socket.timeout:
            continue
        with lock:
            clients[query_key(data)] = addr
        back.send(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--stall", action="store_true",
                    help="stop named (SIGSTOP) once ready: nothing is answered, every lookup "
                         "times out, and the name server costs no CPU")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    named = Named(args.dir, zones()).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        if args.delay > 0:
            port = dns_servers.free_port()
            t = threading.Thread(target=relay, args=(("127.0.0.1", port), ("127.0.0.1", named.port),
                                                     args.delay, stop), daemon=True)
            t.start()
        else:
            port = named.port
        if args.stall:
            named.pause()
        print("port %d" % port, flush=True)
        while not stop.is_set():
            time.sleep(0.2)
    finally:
        named.stop()


if __name__ == "__main__":
    main()
