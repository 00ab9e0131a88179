#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The tests' own Noise (tests/helpers/noise.py) and NativeClient's session,
without our C code: the published vectors byte for byte (XX and IK, NN and
KK too), XX and IK between two Python sides, and NativeClient's handshake
and framing against a coordinator emulated here in Python."""

import hashlib
import hmac
import json
import os
import socket
import sys
import threading

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers")
sys.path.insert(0, HELPERS)

import noise  # noqa: E402
from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519  # noqa: E402
from p2ptest import SOURCE_ROOT, Tap  # noqa: E402
from refclient import (  # noqa: E402
    SESSION_PROLOGUE, FrameReader, Identity, NativeClient, Rejected, binary_frame, frame,
    take_frame,
)

VECTORS = [
    os.path.join(SOURCE_ROOT, "tests", "unit", "data", "noise-25519-chachapoly-blake2b.json"),
    "/work/shared/vectors/noise-25519-chachapoly-blake2b.json",
]
REQUIRED = ("XX", "IK")


def load_vectors():
    for path in VECTORS:
        if os.path.exists(path):
            with open(path) as f:
                return path, json.load(f)["vectors"]
    return None, []


def run_vector(v):
    """Both sides of one vector; (ok, diagnostic)."""
    pattern = v["protocol_name"].split("_")[1]

    def key(name):
        return bytes.fromhex(v[name]) if name in v else None

    init = noise.HandshakeState(pattern, True, key("init_prologue"), s=key("init_static"),
                                rs=key("init_remote_static"), e=key("init_ephemeral"))
    resp = noise.HandshakeState(pattern, False, key("resp_prologue"), s=key("resp_static"),
                                rs=key("resp_remote_static"), e=key("resp_ephemeral"))
    for i, m in enumerate(v["messages"]):
        sender, receiver = (init, resp) if i % 2 == 0 else (resp, init)
        payload = bytes.fromhex(m["payload"])
        if not sender.complete:
            ct = sender.write_message(payload)
            pt = receiver.read_message(ct)
        else:
            ct = sender.send.encrypt(payload)
            pt = receiver.recv.decrypt(ct)
        if ct.hex() != m["ciphertext"]:
            return False, "message %d: got %s, want %s" % (i, ct.hex(), m["ciphertext"])
        if pt != payload:
            return False, "message %d: decrypted %s" % (i, pt.hex())
    if not init.complete or not resp.complete:
        return False, "handshake not complete after the vector's messages"
    want = v["handshake_hash"]
    if init.handshake_hash.hex() != want or resp.handshake_hash.hex() != want:
        return False, "handshake hash %s / %s, want %s" % (
            init.handshake_hash.hex(), resp.handshake_hash.hex(), want)
    return True, None


def test_vectors(tap):
    path, vectors = load_vectors()
    tap.ok(path is not None, "vector file found", VECTORS)
    seen = set()
    for v in vectors:
        pattern = v["protocol_name"].split("_")[1]
        if pattern not in noise.PATTERNS:
            continue
        seen.add(pattern)
        ok, diag = run_vector(v)
        tap.ok(ok, "vector %s byte for byte, handshake hash too" % v["protocol_name"], diag)
    for p in REQUIRED:
        tap.ok(p in seen, "the file has a %s vector" % p)


def test_primitives(tap):
    key, data = os.urandom(64), os.urandom(300)
    tap.ok(noise.hmac_hash(key, data) == hmac.new(key, data, hashlib.blake2b).digest(),
           "HMAC-BLAKE2b agrees with Python's hmac (RFC 2104, block 128)")
    long_key = os.urandom(200)
    tap.ok(noise.hmac_hash(long_key, data) == hmac.new(long_key, data, hashlib.blake2b).digest(),
           "HMAC with a key longer than a block")
    tap.ok(noise.nonce_bytes(0x0102) == b"\0" * 4 + b"\x02\x01" + b"\0" * 6,
           "ChaChaPoly nonce: 4 zero bytes + 64-bit little-endian counter")
    c = noise.CipherState(os.urandom(32))
    msgs = [c.encrypt(b"m%d" % i) for i in range(6)]
    tap.ok(c.n == 6 and c.encrypt_at(3, b"m3") == msgs[3] and c.n == 6,
           "encrypt_at(n) is the n-th message and leaves the counter alone")
    tap.ok(c.decrypt_at(5, msgs[5]) == b"m5", "decrypt_at(n)")
    try:
        c.decrypt_at(4, msgs[5])
        ok = False
    except noise.DecryptError:
        ok = True
    tap.ok(ok, "a message under another nonce fails authentication")
    empty = noise.CipherState()
    tap.ok(empty.encrypt(b"abc") == b"abc" and empty.n == 0, "no key: encryption is identity")


def pair(pattern):
    si, sr = noise.generate_keypair(), noise.generate_keypair()
    rs = sr[1] if pattern == "IK" else None
    init = noise.HandshakeState(pattern, True, b"prologue", s=si[0], rs=rs)
    resp = noise.HandshakeState(pattern, False, b"prologue", s=sr[0])
    return init, resp, si[1], sr[1]


def test_loopback(tap):
    for pattern in REQUIRED:
        init, resp, pi, pr = pair(pattern)
        sender, receiver = init, resp
        sent = []
        while not init.complete:
            payload = os.urandom(len(sent) * 7)
            got = receiver.read_message(sender.write_message(payload))
            sent.append(got == payload)
            sender, receiver = receiver, sender
        tap.ok(all(sent) and resp.complete, "%s loopback: %d messages, payloads intact"
               % (pattern, len(sent)))
        tap.ok(init.rs == pr and resp.rs == pi, "%s: each side learns the other's static key"
               % pattern)
        tap.ok(init.handshake_hash == resp.handshake_hash, "%s: same handshake hash" % pattern)
        big = os.urandom(noise.MAX_MESSAGE - noise.TAGLEN)
        ok = all(resp.recv.decrypt(init.send.encrypt(b"a%d" % i)) == b"a%d" % i
                 for i in range(5))
        ok = ok and init.recv.decrypt(resp.send.encrypt(big)) == big
        tap.ok(ok, "%s: transport both ways, a 65519-byte plaintext too" % pattern)
        init.send.rekey()
        resp.recv.rekey()
        tap.ok(resp.recv.decrypt(init.send.encrypt(b"after rekey")) == b"after rekey",
               "%s: rekey on both sides" % pattern)

    # Failures.
    init, resp, _, _ = pair("XX")
    resp.read_message(init.write_message())
    init.read_message(resp.write_message())
    msg3 = bytearray(init.write_message(b"payload"))
    msg3[-1] ^= 1
    try:
        resp.read_message(bytes(msg3))
        ok = False
    except noise.DecryptError:
        ok = True
    tap.ok(ok, "XX: a flipped bit in message 3 fails authentication")

    init, resp, _, _ = pair("XX")
    try:
        init.read_message(b"\0" * 32)
        ok = False
    except noise.NoiseError:
        ok = True
    tap.ok(ok, "reading out of turn is an error")

    init, resp, _, _ = pair("XX")
    resp.read_message(init.write_message())
    msg2 = resp.write_message(b"x")
    try:
        init.read_message(msg2[:50])
        ok = False
    except noise.NoiseError:
        ok = True
    tap.ok(ok, "a truncated message 2 is an error")

    init, resp, _, _ = pair("XX")
    resp2 = noise.HandshakeState("XX", False, b"other prologue", s=noise.generate_keypair()[0])
    resp2.read_message(init.write_message())
    try:
        init.read_message(resp2.write_message())
        ok = False
    except noise.DecryptError:
        ok = True
    tap.ok(ok, "different prologues: message 2 fails authentication")

    init, resp, _, _ = pair("XX")
    resp.read_message(init.write_message())
    init.read_message(resp.write_message())
    resp.read_message(init.write_message())
    m = init.send.encrypt(b"once")
    resp.recv.decrypt(m)
    try:
        resp.recv.decrypt(m)
        ok = False
    except noise.DecryptError:
        ok = True
    tap.ok(ok, "a replayed transport message fails")


def test_identity(tap):
    a = Identity(seed=bytes(range(32)))
    b = Identity(seed=bytes(range(32)))
    c = Identity(pk=a.pk, sk=a.sk)
    tap.ok(a.pk == b.pk and a.sk == b.sk and c.x_sk == a.x_sk, "Identity from a seed or a pair")
    tap.ok(noise.public_key(a.x_sk) == a.x_pk and len(a.hex) == 64 and a.hex == a.hex.lower(),
           "X25519 form of the key pair; hex is 64 lowercase digits")
    fp = Identity().fingerprint()
    groups = fp.split(" ")
    tap.ok(len(groups) == 12 and all(len(g) == 5 and g.isdigit() for g in groups),
           "fingerprint: 12 groups of 5 digits", fp)


# --- NativeClient against a coordinator emulated here ----------------------

class FakeCoordinator:
    """Accepts one TCP connection and plays the coordinator's side of the
    session according to @mode: "ok" (welcome and a list spanning several
    messages, then ping/pong), "clear-reject", "encrypted-reject"."""

    def __init__(self, mode, entries=3000):
        self.mode = mode
        self.entries = entries
        self.identity = Identity()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.result = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def list_text(self, client_key):
        parts = ["u%04d,127.0.0.1:%d,native1,%s" % (i, 10000 + i, "ab" * 32)
                 for i in range(self.entries)]
        return ";".join(parts + ["self,127.0.0.1:1,native1,%s" % client_key.hex(), "end"])

    def _run(self):
        try:
            self._serve()
        except Exception as e:  # noqa: BLE001  (reported by the test)
            self.result["error"] = repr(e)

    def _serve(self):
        conn, _ = self.listener.accept()
        with conn:
            r = FrameReader(conn)
            hello = r.read_bytes(5.0)
            self.result["hello"] = hello.decode()
            if "noise1" not in hello.decode().split(",")[2].split("+") \
                    or self.mode == "clear-reject":
                conn.sendall(frame("Reject,auth-required"))
                return
            hs = noise.HandshakeState("XX", False, SESSION_PROLOGUE + hello,
                                      s=self.identity.x_sk)
            hs.read_message(r.read_bytes(5.0))
            conn.sendall(binary_frame(hs.write_message(self.identity.pk)))
            try:
                key = hs.read_message(r.read_bytes(5.0))
            except noise.DecryptError:
                self.result["msg3"] = "bad"
                return
            self.result["client_key"] = key
            self.result["key_matches"] = crypto_sign_ed25519_pk_to_curve25519(key) == hs.rs
            send = hs.send
            if self.mode == "encrypted-reject":
                conn.sendall(binary_frame(send.encrypt(frame("Reject,name-taken"))))
                return
            # welcome and the list's start in one message, the rest in
            # messages of at most 65519 bytes.
            stream = frame("welcome,native1") + frame(self.list_text(key))
            out = bytearray()
            chunk = noise.MAX_MESSAGE - noise.TAGLEN
            n = 0
            for i in range(0, len(stream), chunk):
                out += binary_frame(send.encrypt(stream[i:i + chunk]))
                n += 1
            self.result["list_messages"] = n
            conn.sendall(out)
            # Then answer pings until the client closes; two pushes in one
            # message after the first.
            plain = b""
            recv = hs.recv
            while True:
                msg = r.read_bytes(5.0)
                if msg is None:
                    return
                plain += recv.decrypt(msg)
                while True:
                    data, plain = take_frame(plain)
                    if data is None:
                        break
                    text = data.decode()
                    self.result.setdefault("got", []).append(text)
                    if text == "ping":
                        conn.sendall(binary_frame(send.encrypt(
                            frame("pong") + frame("login,x,127.0.0.1:2,native1,%s" % ("cd" * 32)))))

    def close(self):
        self.thread.join(5)
        self.listener.close()


def test_native_client(tap):
    coord = ("127.0.0.1", 9)  # the UDP side is not used

    fake = FakeCoordinator("ok")
    ident = Identity()
    c = NativeClient("alice", coord, identity=ident)
    try:
        entries = c.connect(fake.port)
        tap.ok(fake.result.get("hello") == "hello,alice,native1+noise1",
               "hello in clear with native1+noise1", fake.result)
        tap.ok(c.coordinator_key == fake.identity.pk, "coordinator_key is its Ed25519 key")
        tap.ok(fake.result.get("client_key") == ident.pk and fake.result.get("key_matches"),
               "message 3 proves the client's identity", fake.result)
        tap.ok(fake.result.get("list_messages", 0) >= 2 and len(entries) == fake.entries + 1,
               "a list spanning %s messages" % fake.result.get("list_messages"), len(entries))
        tap.ok(entries[-1] == ("self", "127.0.0.1:1", "native1", ident.hex)
               and entries[0][3] == "ab" * 32, "list entries carry the key as a 4th element",
               entries[-1])
        c.send_frame("ping")
        tap.ok(c.read_frame() == "pong", "ping -> pong, encrypted both ways")
        tap.ok(c.read_frame() == "login,x,127.0.0.1:2,native1,%s" % ("cd" * 32),
               "two frames in one transport message")
        c.send_frames(["hi", "there"])
        c.send_plain(frame("x" * 70000))  # one frame in two messages
        c.send_frame("ping")
        tap.ok(c.read_frame() == "pong", "several frames per message, one frame over two")
    finally:
        c.close()
        fake.close()
    got = fake.result.get("got", [])
    tap.ok(got == ["ping", "hi", "there", "x" * 70000, "ping"] and "error" not in fake.result,
           "the emulated coordinator read every frame", fake.result.get("error"))

    fake = FakeCoordinator("ok")
    c = NativeClient("mallory", coord, tamper=True)
    try:
        try:
            c.connect(fake.port)
            ok = False
        except (RuntimeError, EOFError):
            ok = True
        fake.close()
        tap.ok(ok and fake.result.get("msg3") == "bad",
               "tamper=True: the coordinator cannot open message 3", fake.result)
    finally:
        c.close()

    for mode, kwargs, want, encrypted in (
            ("ok", {"hello_caps": "native1"}, "auth-required", False),
            ("clear-reject", {}, "auth-required", False),
            ("encrypted-reject", {}, "name-taken", True),
            ("ok", {"noise": False}, "auth-required", False)):
        fake = FakeCoordinator(mode)
        c = NativeClient("bob", coord, **kwargs)
        try:
            try:
                c.connect(fake.port)
                got = None
            except Rejected as e:
                got = (e.reason, e.encrypted)
        finally:
            c.close()
            fake.close()
        tap.ok(got == (want, encrypted), "%s %s: Rejected %s (%s)"
               % (mode, kwargs, want, "encrypted" if encrypted else "clear"), got)


def main():
    tap = Tap()
    test_vectors(tap)
    test_primitives(tap)
    test_loopback(tap)
    test_identity(tap)
    test_native_client(tap)
    tap.finish()


if __name__ == "__main__":
    main()
