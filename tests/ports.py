"""Loopback ports for the process tests, chosen so that no two holders can get the same one.

Asking the kernel for a free port (bind to port 0, close, hand the number on) races: until
the server binds it, the port is free for anyone, and the kernel hands the same numbers out
again as source ports of outgoing connections and to the next caller of bind(0).  With
ctest -j, the side-by-side test threads of one script, and daemons that connect to Redis and
name servers all the time, "Address already in use" was the result now and then.

So ports come from below the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range),
which the kernel never gives to an outgoing connection or to bind(0), and each port is
reserved for the rest of the test process by an flock on a file named after it in a
directory all test processes share: a second process (or thread) cannot lock it while the
first lives, and the lock goes away with the process however it ends.  The bind check after
the lock only skips ports some program outside the tests listens on.
"""

import fcntl
import os
import random
import socket
import threading

LOCK_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "relaywatch-test-ports")
_lock = threading.Lock()
_held = {}  # port -> open lock file, kept open for the life of the process


def _range():
    """The ports below the ephemeral range (or above it, if too few are below)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    if low - 10000 >= 2000:
        return 10000, low - 1
    if 65535 - high >= 2000:
        return high + 1, 65535
    return 10000, 65535  # no room outside the range: the locks alone keep tests apart


def _bindable(addr, port, udp):
    kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if udp else [])
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((addr, port))
            except OSError:
                return False
    return True


def reserve_port(addr="127.0.0.1", udp=False):
    """A port on addr (TCP, and UDP too if udp) that no other test process or thread holds
    and that nothing listens on now; it stays this process's until it exits."""
    try:
        os.makedirs(LOCK_DIR, exist_ok=True)
        os.chmod(LOCK_DIR, 0o1777)  # tests of other users share it (the umask would not)
    except PermissionError:
        pass  # another user's directory, already 1777
    first, last = _range()
    with _lock:
        for _ in range(2000):
            port = random.randint(first, last)
            if port in _held:
                continue
            try:
                # flock needs no write access: a file another user made serves as well.
                fd = os.open(os.path.join(LOCK_DIR, str(port)), os.O_RDONLY | os.O_CREAT, 0o666)
            except OSError:
                continue
            f = os.fdopen(fd, "rb")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                continue
            if not _bindable(addr, port, udp):
                f.close()
                continue
            _held[port] = f
            return port
    raise RuntimeError("no free port on %s in %d-%d" % (addr, first, last))
