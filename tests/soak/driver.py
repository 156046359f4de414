#!/usr/bin/python3
"""Soak load for egressd: started by tests/soak/soak_test.cpp, which owns egressd, the origins and the policy.

Usage: driver.py CONFIG.json   (the keys are read in main(); the test writes the file)

Worker threads open connections through egressd until `seconds` have passed, each choosing a kind of
connection at random (random.Random(seed + worker), so a run can be repeated), and check every answer:
allowed bytes must arrive intact (compared byte for byte with what the origin sent or echoes), denied
requests must get egressd's 403, misbehaving upstreams must end in a 502 or a cut connection, never a
hang or a complete-looking answer. Every socket operation has a timeout, so a hang is a failure, not a
stuck test. At the end one JSON line goes to stdout: counts per kind, denials, bytes verified and the
failures; the exit status is 1 when anything failed. Python's standard library only.
"""

import json
import random
import select
import socket
import ssl
import struct
import sys
import threading
import time

OP_TIMEOUT_S = 20  # any single socket operation; longer means egressd left the client hanging
MAX_FAILURES_KEPT = 50

# LocalOrigin::pattern (tests/support/local_origin.cpp, pattern_at): byte i of every /bytes and /slow body.
ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def make_pattern(n):
    return bytes(ALPHABET[(i * 31 + (i >> 8) * 7 + (i >> 16)) % 62] for i in range(n))


def fnv1a64(data):  # LocalOrigin::checksum
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Failure(Exception):
    """A check that did not hold: the answer was wrong, missing or late."""


class Closed(Exception):
    """The peer ended the connection (EOF or reset) before what was being read was complete."""


class Stream:
    """A connected socket (plain or TLS) with a receive buffer, for reading HTTP by hand."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def send(self, data):
        self.sock.sendall(data)

    def fill(self):
        try:
            data = self.sock.recv(262144)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError) as e:
            raise Closed(type(e).__name__) from e
        except socket.timeout as e:
            raise Failure(f"no bytes for {OP_TIMEOUT_S} s (hang)") from e
        if not data:
            raise Closed("EOF")
        self.buf += data

    def take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_until(self, marker, limit=65536):
        while True:
            at = self.buf.find(marker)
            if at >= 0:
                return self.take(at + len(marker))
            if len(self.buf) > limit:
                raise Failure(f"no {marker!r} within {limit} bytes")
            self.fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self.fill()
        return self.take(n)

    def read_some_then(self, n):
        """Up to n bytes, returning early only at a close: (bytes, closed)."""
        try:
            return self.read_exact(n), False
        except Closed:
            return self.take(len(self.buf)), True

    def read_to_eof(self):
        while True:
            try:
                self.fill()
            except Closed:
                return self.take(len(self.buf))

    def read_head(self):
        """(status, {lowercase name: value}) of a response head."""
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise Failure(f"bad status line {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    def read_body(self, headers):
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size_line = self.read_until(b"\r\n").split(b";")[0].strip()
                size = int(size_line, 16)
                if size == 0:
                    self.read_until(b"\r\n")  # no trailers from LocalOrigin: the empty line
                    return bytes(body)
                body += self.read_exact(size)
                if self.read_exact(2) != b"\r\n":
                    raise Failure("chunk not followed by CRLF")
        if "content-length" in headers:
            return self.read_exact(int(headers["content-length"]))
        return self.read_to_eof()

    def read_response(self, head_only=False):
        status, headers = self.read_head()
        while 100 <= status < 200:  # interim answers
            status, headers = self.read_head()
        body = b"" if head_only or status in (204, 304) else self.read_body(headers)
        return status, headers, body

    def close(self, reset=False):
        try:
            if reset:  # SO_LINGER 0: the close sends RST, as a crashing client's would
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            pass


class Worker:
    def __init__(self, config, index, pattern, stop_at):
        self.c = config
        self.rng = random.Random(config["seed"] * 1000 + index)
        self.pattern = pattern
        self.stop_at = stop_at
        self.kinds = {}  # kind -> {"connections": n, "requests": n, outcome: n, ...}
        self.denials = 0
        self.bytes_verified = 0
        self.failures = []
        self.failure_count = 0
        self.egressd_ctx = ssl.create_default_context(cafile=config["egressd_ca"])
        self.origin_ctx = ssl.create_default_context(cafile=config["origin_ca"])

    # ---- bookkeeping -------------------------------------------------------------------------------

    def count(self, kind, key, n=1):
        entry = self.kinds.setdefault(kind, {})
        entry[key] = entry.get(key, 0) + n

    def fail(self, kind, variant, why):
        self.failure_count += 1
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append({"kind": kind, "variant": variant, "t": round(time.monotonic() - T0, 3),
                                  "why": why})

    # ---- helpers ----------------------------------------------------------------------------------

    def connect_proxy(self):
        sock = socket.create_connection(("127.0.0.1", self.c["proxy_port"]), timeout=OP_TIMEOUT_S)
        sock.settimeout(OP_TIMEOUT_S)
        return Stream(sock)

    def size(self, cap=None):
        r = self.rng.random()
        top = cap or self.c["max_body"]
        if r < 0.05:
            n = 0
        elif r < 0.60:
            n = self.rng.randint(1, 16 * 1024)
        elif r < 0.90:
            n = self.rng.randint(16 * 1024, 256 * 1024)
        else:
            n = self.rng.randint(256 * 1024, self.c["max_body"])
        return min(n, top)

    def connect_tunnel(self, host, port):
        """A CONNECT that must be allowed: the stream after egressd's 200."""
        s = self.connect_proxy()
        s.send(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        status, headers = s.read_head()
        if status != 200:
            try:
                body = s.read_body(headers)
            except (Closed, Failure):
                body = b""
            s.close()
            raise Failure(f"CONNECT {host}:{port} answered {status}, expected 200; body {body[:300]!r}")
        return s

    def tls_over(self, s, ctx, name):
        tls = ctx.wrap_socket(s.sock, server_hostname=name)
        tls.settimeout(OP_TIMEOUT_S)
        out = Stream(tls)
        out.buf = s.buf  # nothing is expected before the ServerHello, but keep whatever came
        return out

    def verified(self, got, want, what):
        if got != want:
            first = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), None)
            raise Failure(f"{what}: {len(got)} bytes, expected {len(want)}; first difference at {first}")
        self.bytes_verified += len(got)

    def get_bytes(self, s, host_port, absolute, n, kind):
        target = f"http://{host_port}/bytes?n={n}" if absolute else f"/bytes?n={n}"
        s.send(f"GET {target} HTTP/1.1\r\nHost: {host_port}\r\n\r\n".encode())
        status, _, body = s.read_response()
        if status != 200:
            raise Failure(f"GET {target}: status {status}, body {body[:300]!r}")
        self.verified(body, self.pattern[:n], f"GET {target}")
        self.count(kind, "requests")

    def post_echo(self, s, host_port, absolute, n, kind):
        target = f"http://{host_port}/echo" if absolute else "/echo"
        body = self.rng.randbytes(n)
        s.send(f"POST {target} HTTP/1.1\r\nHost: {host_port}\r\nContent-Length: {n}\r\n\r\n".encode() + body)
        status, _, echoed = s.read_response()
        if status != 200:
            raise Failure(f"POST {target}: status {status}, body {echoed[:300]!r}")
        self.verified(echoed, body, f"POST {target} ({n} bytes)")
        self.count(kind, "requests")

    def exchange_opaque(self, s, payload):
        """Sends `payload`, half-closes, and reads to EOF at the same time (the echo needs both)."""
        sock = s.sock
        received = bytearray(s.buf)
        sent = 0
        deadline = time.monotonic() + 3 * OP_TIMEOUT_S
        write_open = True
        while True:
            if time.monotonic() > deadline:
                raise Failure("opaque exchange did not finish in time")
            if write_open and sent == len(payload):
                sock.shutdown(socket.SHUT_WR)
                write_open = False
            readable, writable, _ = select.select([sock], [sock] if write_open else [], [], OP_TIMEOUT_S)
            if not readable and not writable:
                raise Failure(f"no progress for {OP_TIMEOUT_S} s (hang)")
            if writable:
                sent += sock.send(payload[sent:sent + 65536])
            if readable:
                data = sock.recv(262144)
                if not data:
                    return bytes(received)
                received += data

    # ---- the kinds of connection ------------------------------------------------------------------

    def plain_http(self):
        """Absolute-form keep-alive: 1-4 GET /bytes or POST /echo on one connection."""
        host_port = f"127.0.0.1:{self.c['http_port']}"
        s = self.connect_proxy()
        try:
            for _ in range(self.rng.randint(1, 4)):
                if self.rng.random() < 0.75:
                    self.get_bytes(s, host_port, True, self.size(), "plain_http")
                else:
                    self.post_echo(s, host_port, True, self.size(cap=1 << 20), "plain_http")
        finally:
            s.close()

    def terminated_tls(self):
        """CONNECT to the terminated name, TLS trusting egressd's CA, 1-4 requests inside."""
        name, port = self.c["https_name"], self.c["https_port"]
        s = self.tls_over(self.connect_tunnel(name, port), self.egressd_ctx, name)
        try:
            for _ in range(self.rng.randint(1, 4)):
                if self.rng.random() < 0.7:
                    self.get_bytes(s, f"{name}:{port}", False, self.size(), "terminated_tls")
                else:
                    self.post_echo(s, f"{name}:{port}", False, self.size(cap=1 << 20), "terminated_tls")
        finally:
            s.close()

    def skipped_tls(self):
        """CONNECT to the `tls: skip` name: the origin's own certificate, end to end."""
        name, port = self.c["skip_name"], self.c["https_port"]
        s = self.tls_over(self.connect_tunnel(name, port), self.origin_ctx, name)
        try:
            for _ in range(self.rng.randint(1, 2)):
                self.get_bytes(s, f"{name}:{port}", False, self.size(), "skipped_tls")
        finally:
            s.close()

    def opaque_tunnel(self):
        """CONNECT to the TCP echo: bytes that are neither TLS nor HTTP, a half-close, the echo back."""
        s = self.connect_tunnel("127.0.0.1", self.c["echo_port"])
        try:
            # The first byte is never 0x16 (a TLS record), which egressd would try to terminate.
            payload = b"soak:" + self.rng.randbytes(self.size(cap=1 << 20))
            got = self.exchange_opaque(s, payload)
            self.verified(got, payload + b"\nbye\n", "opaque echo")
            self.count("opaque_tunnel", "requests")
        finally:
            s.close()

    def slow(self):
        """A chunked response paced by the origin."""
        n = self.rng.randint(1, 64 * 1024)
        chunk = self.rng.randint(1000, 16384)
        host_port = f"127.0.0.1:{self.c['http_port']}"
        s = self.connect_proxy()
        try:
            target = f"http://{host_port}/slow?n={n}&chunk={chunk}&delay_ms=5"
            s.send(f"GET {target} HTTP/1.1\r\nHost: {host_port}\r\n\r\n".encode())
            status, headers, body = s.read_response()
            if status != 200 or headers.get("transfer-encoding", "").lower() != "chunked":
                raise Failure(f"GET {target}: status {status}, headers {headers}")
            self.verified(body, self.pattern[:n], f"GET {target}")
            self.count("slow", "requests")
        finally:
            s.close()

    def denied(self):
        """A request the policy does not allow, to a port where nothing listens: 403, never 502. Never
        aborted, so each is exactly one deny-log line."""
        dead = self.c["dead_port"]
        name = self.c["https_name"]
        variant = self.rng.choice(["connect_ip", "connect_name", "connect_unknown", "get", "post",
                                   "after_allowed"])
        s = self.connect_proxy()
        try:
            if variant == "after_allowed":  # keep-alive: an allowed request, then a denied one
                self.get_bytes(s, f"127.0.0.1:{self.c['http_port']}", True, self.size(cap=65536), "denied")
            if variant == "connect_ip":
                s.send(f"CONNECT 127.0.0.1:{dead} HTTP/1.1\r\nHost: 127.0.0.1:{dead}\r\n\r\n".encode())
            elif variant == "connect_name":  # the name is allowed, on another port
                s.send(f"CONNECT {name}:{dead} HTTP/1.1\r\nHost: {name}:{dead}\r\n\r\n".encode())
            elif variant == "connect_unknown":
                s.send(b"CONNECT denied.invalid:443 HTTP/1.1\r\nHost: denied.invalid:443\r\n\r\n")
            elif variant == "post":
                body = self.rng.randbytes(self.rng.randint(0, 65536))
                s.send(f"POST http://{name}:{dead}/echo HTTP/1.1\r\nHost: {name}:{dead}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            else:
                s.send(f"GET http://127.0.0.1:{dead}/hello HTTP/1.1\r\n"
                       f"Host: 127.0.0.1:{dead}\r\n\r\n".encode())
            status, headers, body = s.read_response()
            if status != 403:
                raise Failure(f"{variant}: status {status} (a wrong allow shows as 502), body {body[:300]!r}")
            try:
                error = json.loads(body).get("error")
            except ValueError:
                error = None
            if error != "policy_denied":
                raise Failure(f"{variant}: 403 without error policy_denied: {body[:300]!r}")
            self.denials += 1
            self.count("denied", variant)
        finally:
            s.close()

    def aborted(self):
        """A client that gives up: mid-head, mid-upload, right after the 200 of a CONNECT, mid-TLS-
        handshake, mid-download. Only heads egressd never completed, or requests it already allowed, are
        aborted, so none can become a deny-log line."""
        variant = self.rng.choice(["mid_head", "mid_upload", "after_connect", "mid_handshake",
                                   "mid_download"])
        reset = self.rng.random() < 0.5
        host_port = f"127.0.0.1:{self.c['http_port']}"
        s = None
        try:
            if variant == "mid_head":
                s = self.connect_proxy()
                head = f"GET http://{host_port}/bytes?n=100 HTTP/1.1\r\nHost: {host_port}\r\n\r\n".encode()
                s.send(head[:self.rng.randint(1, len(head) - 1)])  # a proper prefix is never a whole head
            elif variant == "mid_upload":
                s = self.connect_proxy()
                # A finished request first: the caller is identified and allowed before the abort, so the
                # abort cannot turn into "caller unknown" (a deny line) for the upload below.
                self.get_bytes(s, host_port, True, self.rng.randint(0, 1024), "aborted")
                length = self.rng.randint(64 * 1024, 1 << 20)
                s.send(f"POST http://{host_port}/echo HTTP/1.1\r\nHost: {host_port}\r\n"
                       f"Content-Length: {length}\r\n\r\n".encode())
                s.send(self.rng.randbytes(self.rng.randint(0, length - 1)))
            elif variant == "after_connect":
                target = self.rng.choice([(self.c["https_name"], self.c["https_port"]),
                                          ("127.0.0.1", self.c["echo_port"])])
                s = self.connect_tunnel(*target)
            elif variant == "mid_handshake":
                name = self.c["https_name"]
                s = self.connect_tunnel(name, self.c["https_port"])
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                tls = self.egressd_ctx.wrap_bio(incoming, outgoing, server_hostname=name)
                try:
                    tls.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                hello = outgoing.read()
                s.send(hello[:self.rng.randint(1, len(hello))])
            else:  # mid_download
                s = self.connect_proxy()
                n = self.rng.randint(1 << 20, self.c["max_body"])
                s.send(f"GET http://{host_port}/bytes?n={n} HTTP/1.1\r\nHost: {host_port}\r\n\r\n".encode())
                status, _ = s.read_head()
                if status != 200:
                    raise Failure(f"mid_download: status {status}")
                part = s.read_exact(self.rng.randint(0, n // 2))
                self.verified(part, self.pattern[:len(part)], "mid_download prefix")
            self.count("aborted", variant)
        except (ConnectionResetError, BrokenPipeError, Closed) as e:
            raise Failure(f"{variant}: egressd closed first ({type(e).__name__}: {e})") from e
        finally:
            if s is not None:
                s.close(reset=reset)

    def faulty(self):
        """An allowed upstream that misbehaves (see the test's misbehaving server): the client must get a
        502 or a cut connection, in time, and never all the bytes the broken response promised."""
        port = self.c["faulty_port"]
        promised = self.c["faulty_promised"]
        host_port = f"127.0.0.1:{port}"
        path = self.rng.choice(["/partial", "/partial-fin", "/reset", "/cut-head"])
        tunnel = self.rng.random() < 0.25
        variant = ("tunnel" if tunnel else "http") + path
        if tunnel:
            s = self.connect_tunnel("127.0.0.1", port)
            request = f"GET {path} HTTP/1.1\r\nHost: {host_port}\r\n\r\n"
        else:
            s = self.connect_proxy()
            request = f"GET http://{host_port}{path} HTTP/1.1\r\nHost: {host_port}\r\n\r\n"
        try:
            s.send(request.encode())
            try:
                status, headers = s.read_head()
            except Closed:
                self.count("faulty", variant + ":closed")
                return
            if status == 502 and not tunnel:
                s.read_body(headers)
                self.count("faulty", variant + ":502")
                return
            if status != 200:
                raise Failure(f"{variant}: status {status}, expected 502 or a cut connection")
            body, closed = s.read_some_then(promised)
            if not closed:
                raise Failure(f"{variant}: all {promised} promised bytes arrived, the upstream sent fewer")
            self.verified(body, self.pattern[:len(body)], f"{variant} partial body")
            self.count("faulty", variant + ":cut")
        except (ConnectionResetError, BrokenPipeError):
            self.count("faulty", variant + ":closed")
        finally:
            s.close()

    def probe(self):
        """One small GET on a connection of its own: the light load before a memory reading."""
        s = self.connect_proxy()
        try:
            self.get_bytes(s, f"127.0.0.1:{self.c['http_port']}", True, 1024, "probe")
        finally:
            s.close()

    # The mix, as weights; a config's "kinds" replaces it.
    KINDS = {"plain_http": 25, "terminated_tls": 20, "skipped_tls": 5, "opaque_tunnel": 10, "slow": 3,
             "denied": 15, "aborted": 12, "faulty": 10}

    def run(self):
        kinds = self.c.get("kinds") or self.KINDS
        names = list(kinds)
        weights = [kinds[k] for k in names]
        while time.monotonic() < self.stop_at:
            kind = self.rng.choices(names, weights)[0]
            self.count(kind, "connections")
            try:
                getattr(self, kind)()
            except Failure as e:
                self.fail(kind, "", str(e))
            except Exception as e:  # noqa: BLE001 - anything unexpected is a failure with its reason
                self.fail(kind, "", f"{type(e).__name__}: {e}")


T0 = time.monotonic()


def main():
    with open(sys.argv[1]) as f:
        config = json.load(f)
    seed = config["seed"]
    print(f"soak driver: seed {seed}, {config['workers']} workers, {config['seconds']} s", file=sys.stderr,
          flush=True)
    pattern = make_pattern(config["max_body"])
    check = config["pattern_check"]
    if fnv1a64(pattern[:check["n"]]) != int(check["fnv1a64"]):
        print(json.dumps({"failure_count": 1, "failures": [{"why": "pattern differs from LocalOrigin's"}]}))
        return 1
    start = time.monotonic()
    stop_at = start + config["seconds"]
    workers = [Worker(config, i, pattern, stop_at) for i in range(config["workers"])]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kinds = {}
    for w in workers:
        for kind, counts in w.kinds.items():
            merged = kinds.setdefault(kind, {})
            for key, n in counts.items():
                merged[key] = merged.get(key, 0) + n
    summary = {
        "seed": seed,
        "workers": config["workers"],
        "seconds": round(time.monotonic() - start, 1),
        "connections": sum(k.get("connections", 0) for k in kinds.values()),
        "denials": sum(w.denials for w in workers),
        "bytes_verified": sum(w.bytes_verified for w in workers),
        "failure_count": sum(w.failure_count for w in workers),
        "failures": [f for w in workers for f in w.failures][:MAX_FAILURES_KEPT],
        "kinds": kinds,
    }
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 1 if summary["failure_count"] else 0


if __name__ == "__main__":
    sys.exit(main())
