"""Private DNS servers for the process tests: a BIND named (authoritative, with a query log) and,
optionally, an unbound forwarding to it.

Nothing here touches the machine's own DNS set-up: every file (configuration, zones, keys, pid
file, logs) lives under a directory the caller gives, the servers listen on 127.0.0.1 (named) or
a 127/8 address (unbound) with a free port, run in the foreground as child processes and are
stopped by PID.

Zones are given as Python data, zone name -> zone:

    {"test": {"soa": {"ttl": 3600, "minimum": 60},       # negative TTL = min(ttl, minimum)
              "ttl": 300,                                 # default TTL of the records
              "records": [("dom1", "MX", 300, "10 mx.dom1.test."),
                          ("mx.dom1", "A", 60, "127.0.0.25"),
                          ("*.wild", "MX", 60, "10 mx.test."),
                          ("v6", "AAAA", None, "::1")]}}  # None: the zone's default TTL

Owners are relative to the zone, "@" for the apex, or absolute with a trailing dot. The zone
class below builds the same thing with methods (mx, a, aaaa, ptr). Each zone gets an SOA and an
NS record (ns.<zone>. with an A record 127.0.0.1) unless it has its own NS.

BIND 9.18 writes one query-log line per query it receives, e.g.
    24-Nov-2026 22:41:21.962 client @0x7f3787b5d098 127.0.0.1#17814 (dom0001.test): query: \
dom0001.test IN MX +E(0)D (127.0.0.1)
query_counts() and queries() parse those lines (the @0x part, a `view NAME:` part and the flags
are optional). The log is written asynchronously: call wait_log_stable() before counting.

Readiness is checked with `rndc status` and `rndc zonestatus`, never with a DNS query, so that
the query log only holds what the code under test asked.
"""
import collections
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import ports

NAMED = "/usr/sbin/named"
RNDC = "rndc"
TSIG_KEYGEN = "tsig-keygen"
CHECKCONF = "named-checkconf"
UNBOUND = "/usr/sbin/unbound"


def free_port(host="127.0.0.1"):
    """A port free for both TCP and UDP on host (DNS servers take both), held for this test
    process alone (ports.py)."""
    return ports.reserve_port(host, udp=True)


def named_available():
    return os.access(NAMED, os.X_OK) and all(shutil.which(p) for p in (RNDC, TSIG_KEYGEN))


def unbound_available():
    return os.access(UNBOUND, os.X_OK) and shutil.which("unbound-control") is not None


def reverse_name(ip):
    """1.2.0.127.in-addr.arpa for 127.0.2.1; the nibble name under ip6.arpa for IPv6."""
    return ipaddress.ip_address(ip).reverse_pointer


def _fqdn(name):
    return name if name.endswith(".") else name + "."


# ---------------------------------------------------------------- zones

class Zone:
    """A zone as data: `soa` TTL and MINIMUM (the negative TTL is the smaller of the two, RFC
    2308), a default TTL, and records (owner, type, ttl or None, rdata)."""

    def __init__(self, name, ttl=300, soa_ttl=3600, negative_ttl=60, serial=1):
        self.name = name.rstrip(".").lower()
        self.ttl = ttl
        self.soa = {"ttl": soa_ttl, "minimum": negative_ttl, "serial": serial}
        self.records = []

    def add(self, owner, rtype, rdata, ttl=None):
        self.records.append((owner, rtype.upper(), ttl, rdata))
        return self

    def mx(self, owner, exchange, pref=10, ttl=None):
        return self.add(owner, "MX", "%d %s" % (pref, _fqdn(exchange)), ttl)

    def a(self, owner, addr, ttl=None):
        return self.add(owner, "A", str(ipaddress.IPv4Address(addr)), ttl)

    def aaaa(self, owner, addr, ttl=None):
        return self.add(owner, "AAAA", str(ipaddress.IPv6Address(addr)), ttl)

    def ptr(self, ip_or_owner, target, ttl=None):
        """PTR for an IP address (the owner is its reverse name) or for an owner given as is."""
        try:
            owner = reverse_name(ip_or_owner) + "."
        except ValueError:
            owner = ip_or_owner
        return self.add(owner, "PTR", _fqdn(target), ttl)

    def data(self):
        return {"soa": dict(self.soa), "ttl": self.ttl, "records": list(self.records)}


def zone_text(name, zone):
    """The master-file text of one zone given as a Zone or as data (see the module doc)."""
    if isinstance(zone, Zone):
        zone = zone.data()
    origin = _fqdn(name.rstrip(".").lower())
    soa = zone.get("soa", {})
    soa_ttl = soa.get("ttl", 3600)
    minimum = soa.get("minimum", 60)
    serial = soa.get("serial", 1)
    default_ttl = zone.get("ttl", 300)
    records = list(zone.get("records", []))
    lines = ["$ORIGIN %s" % origin, "$TTL %d" % default_ttl,
             "@ %d IN SOA ns.%s hostmaster.%s %d 3600 600 86400 %d"
             % (soa_ttl, origin, origin, serial, minimum)]
    if not any(r[1].upper() == "NS" and r[0] in ("@", origin) for r in records):
        lines.append("@ %d IN NS ns.%s" % (soa_ttl, origin))
        lines.append("ns.%s %d IN A 127.0.0.1" % (origin, soa_ttl))
    for owner, rtype, ttl, rdata in records:
        lines.append("%s %s IN %s %s" % (owner, "" if ttl is None else int(ttl), rtype.upper(),
                                         rdata))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- query log

# Time (optional, print-time), "client", optional @0x..., ADDR#PORT, (name), optional view,
# "query:", QNAME CLASS TYPE FLAGS (server address).
QUERY_RE = re.compile(
    r"\bclient (?:@0x[0-9a-fA-F]+ )?(?P<addr>[0-9A-Fa-f.:%]+)#(?P<port>\d+)"
    r"(?: \([^)]*\))?: (?:view [^:]*: )?query: (?P<qname>\S+) (?P<qclass>\S+) (?P<qtype>\S+)"
    r"(?: (?P<flags>\S*))?(?: \((?P<server>[^)]*)\))?\s*$")


def parse_query_line(line):
    """(client address, qname lowercased without the final dot, qclass, qtype) or None."""
    m = QUERY_RE.search(line)
    if not m:
        return None
    qname = m.group("qname").lower()
    if qname != ".":
        qname = qname.rstrip(".")
    return m.group("addr"), qname, m.group("qclass").upper(), m.group("qtype").upper()


def read_queries(path):
    """Every query line of a query log as (client, qname, qclass, qtype)."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path, "r", errors="replace") as f:
        for line in f:
            q = parse_query_line(line)
            if q is not None:
                out.append(q)
    return out


def wait_file_stable(path, quiet=0.5, timeout=15.0):
    """Wait until the file's size has not changed for `quiet` seconds; return its size."""
    deadline = time.monotonic() + timeout
    last = None
    since = time.monotonic()
    while True:
        size = os.path.getsize(path) if os.path.exists(path) else -1
        now = time.monotonic()
        if size != last:
            last, since = size, now
        elif now - since >= quiet:
            return size
        if now > deadline:
            raise AssertionError("%s still growing after %.0fs" % (path, timeout))
        time.sleep(0.05)


# ---------------------------------------------------------------- named

class Named:
    """A private BIND named, authoritative for the given zones, with a query log.

        n = Named(tmpdir, zones); n.start()
        ... n.pause(); n.resume(); n.kill() ...
        n.wait_log_stable(); n.query_counts("127.0.0.1")  -> Counter({"MX": 12, "PTR": 3})
        n.stop()
    """

    def __init__(self, base_dir, zones, port=None, name="named", threads=2):
        self.dir = os.path.join(base_dir, "%s-%d" % (name, time.monotonic_ns()))
        os.makedirs(os.path.join(self.dir, "keys"))
        os.chmod(self.dir, 0o755)
        self.zones = dict(zones)
        self.port = port
        self.control_port = None
        self.threads = threads
        self.proc = None
        self.conf = os.path.join(self.dir, "named.conf")
        self.rndc_conf = os.path.join(self.dir, "rndc.conf")
        self.query_log = os.path.join(self.dir, "query.log")
        self.named_log = os.path.join(self.dir, "named.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.pid_file = os.path.join(self.dir, "named.pid")

    # configuration
    def _write_config(self):
        key = subprocess.run([TSIG_KEYGEN, "-a", "hmac-sha256", "rw-rndc-key"],
                             capture_output=True, text=True, check=True).stdout
        key_file = os.path.join(self.dir, "rndc.key")
        with open(key_file, "w") as f:
            f.write(key)
        zone_stanzas = []
        for i, (zname, zone) in enumerate(sorted(self.zones.items())):
            path = os.path.join(self.dir, "zone%d.db" % i)
            with open(path, "w") as f:
                f.write(zone_text(zname, zone))
            zone_stanzas.append('zone "%s" { type primary; file "%s"; };'
                                % (zname.rstrip(".").lower(), path))
        d = self.dir
        conf = """
include "%(d)s/rndc.key";
options {
    directory "%(d)s";
    pid-file "%(d)s/named.pid";
    session-keyfile "%(d)s/session.key";
    managed-keys-directory "%(d)s/keys";
    dump-file "%(d)s/cache_dump.db";
    statistics-file "%(d)s/named.stats";
    listen-on port %(port)d { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
    allow-query { any; };
    notify no;
    querylog yes;
};
controls {
    inet 127.0.0.1 port %(cport)d allow { 127.0.0.1; } keys { "rw-rndc-key"; };
};
logging {
    channel rw_queries { file "%(d)s/query.log"; print-time yes; };
    channel rw_main { file "%(d)s/named.log"; print-time yes; print-severity yes;
                      print-category yes; severity info; };
    category queries { rw_queries; };
    category default { rw_main; };
    category lame-servers { null; };
};
%(zones)s
""" % {"d": d, "port": self.port, "cport": self.control_port,
       "zones": "\n".join(zone_stanzas)}
        with open(self.conf, "w") as f:
            f.write(conf)
        with open(self.rndc_conf, "w") as f:
            f.write('include "%s/rndc.key";\noptions { default-key "rw-rndc-key"; '
                    'default-server 127.0.0.1; default-port %d; };\n' % (d, self.control_port))
        r = subprocess.run([CHECKCONF, "-z", self.conf], capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("named-checkconf -z failed:\n%s%s" % (r.stdout, r.stderr))

    def rndc(self, *args, check=True, timeout=10):
        r = subprocess.run([RNDC, "-c", self.rndc_conf] + list(args), capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("rndc %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
        return r

    # life cycle
    def start(self, timeout=20.0):
        """Start named in the foreground (-f; -g would ignore the logging statement) and wait
        until `rndc status` answers and every zone is loaded. Retries with other ports if one
        was taken meanwhile."""
        chosen = self.port
        for attempt in range(3):
            self.port = chosen or free_port()
            self.control_port = free_port()
            self._write_config()
            err = open(self.stderr_path, "ab")
            self.proc = subprocess.Popen([NAMED, "-f", "-c", self.conf, "-n", str(self.threads)],
                                         stdout=err, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            err.close()
            try:
                self._wait_ready(timeout)
                return self
            except AssertionError:
                text = self.logs()
                self.stop()
                if chosen is None and "address in use" in text.lower() and attempt < 2:
                    continue
                raise
        return self

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("named exited %d:\n%s" % (self.proc.returncode,
                                                                self.logs()))
            r = self.rndc("status", check=False, timeout=5)
            if r.returncode == 0 and "server is up and running" in r.stdout:
                break
            if time.monotonic() > deadline:
                raise AssertionError("named not ready after %.0fs (rndc: %s%s):\n%s"
                                     % (timeout, r.stdout, r.stderr, self.logs()))
            time.sleep(0.05)
        for zname in self.zones:
            while True:
                r = self.rndc("zonestatus", zname.rstrip("."), check=False, timeout=5)
                if r.returncode == 0 and "last loaded:" in r.stdout:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError("zone %s not loaded: %s%s\n%s"
                                         % (zname, r.stdout, r.stderr, self.logs()))
                time.sleep(0.05)

    def logs(self):
        out = []
        for p in (self.stderr_path, self.named_log):
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out.append("== %s\n%s" % (p, f.read()[-4000:]))
        return "\n".join(out)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def address(self):
        """As the daemon's `resolver` key takes it."""
        return "127.0.0.1:%d" % self.port

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pause(self):
        """SIGSTOP: named keeps its sockets, the kernel queues the queries, nobody answers."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        """SIGKILL: the port is closed (queries get ICMP port unreachable)."""
        if self.running():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout=10.0):
        """SIGTERM by PID (after SIGCONT, in case it was paused), SIGKILL if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGCONT)
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            except ProcessLookupError:
                pass

    # query log
    def wait_log_stable(self, quiet=0.5, timeout=15.0):
        return wait_file_stable(self.query_log, quiet, timeout)

    def queries(self, client_ip=None):
        """(qname lowercased, qtype) for every query line, from client_ip if given."""
        return [(q[1], q[3]) for q in read_queries(self.query_log)
                if client_ip is None or q[0] == client_ip]

    def query_counts(self, client_ip):
        """Counter: qtype -> number of query lines whose client address is client_ip."""
        return collections.Counter(q[3] for q in read_queries(self.query_log)
                                   if q[0] == client_ip)


def query_counts(named, client_ip):
    return named.query_counts(client_ip)


def start_named(base_dir, zones, **kw):
    return Named(base_dir, zones, **kw).start()


# ---------------------------------------------------------------- unbound (optional)

class Unbound:
    """A private unbound on ADDR:PORT forwarding everything to named (the study's local cache
    in front of the upstream server). `test.` and `127.in-addr.arpa.` lose their built-in
    local zones; nothing is asked outside the machine."""

    def __init__(self, base_dir, forward_to, address="127.0.0.35", port=None,
                 outgoing="127.0.0.1", log_queries=False):
        self.dir = os.path.join(base_dir, "unbound-%d" % time.monotonic_ns())
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.address = address
        self.port = port
        self.forward_to = forward_to  # "127.0.0.1@5300"
        self.outgoing = outgoing
        self.log_queries = log_queries
        self.log = os.path.join(self.dir, "unbound.log")
        self.proc = None
        self.conf = os.path.join(self.dir, "unbound.conf")
        self.sock = os.path.join(self.dir, "control.sock")

    def start(self, timeout=15.0):
        self.port = self.port or free_port(host=self.address)
        with open(self.conf, "w") as f:
            f.write("""server:
    interface: %(addr)s@%(port)d
    port: %(port)d
    do-ip6: no
    chroot: ""
    username: ""
    directory: "%(d)s"
    pidfile: "%(d)s/unbound.pid"
    logfile: "%(d)s/unbound.log"
    use-syslog: no
    do-daemonize: no
    do-not-query-localhost: no
    module-config: "iterator"
    outgoing-interface: %(out)s
    local-zone: "test." nodefault
    local-zone: "127.in-addr.arpa." nodefault
    access-control: 127.0.0.0/8 allow
    log-queries: %(logq)s
remote-control:
    control-enable: yes
    control-interface: %(sock)s
forward-zone:
    name: "."
    forward-addr: %(fwd)s
""" % {"addr": self.address, "port": self.port, "d": self.dir, "sock": self.sock,
                "fwd": self.forward_to, "out": self.outgoing,
                "logq": "yes" if self.log_queries else "no"})
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("unbound exited %d" % self.proc.returncode)
            if self.control("status", check=False).returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise AssertionError("unbound not ready")
            time.sleep(0.05)

    def control(self, *args, check=True):
        r = subprocess.run(["unbound-control", "-c", self.conf] + list(args),
                           capture_output=True, text=True, timeout=10)
        if check and r.returncode != 0:
            raise AssertionError("unbound-control %s: %s%s" % (args, r.stdout, r.stderr))
        return r

    def query_counts(self, client_ip):
        """With log_queries: queries unbound received from client_ip, by type. A line is
        `[T] unbound[P:T] info: 127.0.0.1 name. MX IN`."""
        wait_file_stable(self.log)
        out = collections.Counter()
        pat = re.compile(r"\binfo: (\S+) (\S+) (\S+) IN\s*$")
        with open(self.log, errors="replace") as f:
            for line in f:
                m = pat.search(line)
                if m and m.group(1) == client_ip:
                    out[m.group(3)] += 1
        return out

    def flush(self):
        self.control("flush_zone", ".")
        self.control("flush_negative")

    def stop(self, timeout=10.0):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
