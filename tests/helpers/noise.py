# SPDX-License-Identifier: MIT
"""A small Noise Protocol Framework (revision 34) for the tests:
Noise_{XX,IK,NN,KK}_25519_ChaChaPoly_BLAKE2b, written from the
specification (not from our C code) so that the tests interoperate two
independent implementations.

- DH: X25519 (nacl.bindings.crypto_scalarmult), DHLEN 32;
- cipher: ChaCha20-Poly1305 IETF, nonce = 4 zero bytes + the 64-bit counter
  little-endian, 16-byte tag;
- hash: BLAKE2b-512 (hashlib), HASHLEN 64, BLOCKLEN 128; HMAC per RFC 2104,
  HKDF as in section 4.3 of the specification.

CipherState, SymmetricState and HandshakeState follow section 5; no PSK
modes, no fallback.  Errors are NoiseError (DecryptError when a message
fails authentication).
"""

import hashlib
import os

from nacl.bindings import (
    crypto_aead_chacha20poly1305_ietf_decrypt,
    crypto_aead_chacha20poly1305_ietf_encrypt,
    crypto_scalarmult,
    crypto_scalarmult_base,
)
from nacl.exceptions import CryptoError

DHLEN = 32
HASHLEN = 64
BLOCKLEN = 128
KEYLEN = 32
TAGLEN = 16
MAX_MESSAGE = 65535
MAX_NONCE = 2 ** 64 - 1  # reserved: never used to encrypt

# Handshake patterns (section 7): (pre-messages of the initiator, of the
# responder), then the messages, the initiator's first.
PATTERNS = {
    "NN": ((), (), (("e",), ("e", "ee"))),
    "KK": (("s",), ("s",), (("e", "es", "ss"), ("e", "ee", "se"))),
    "XX": ((), (), (("e",), ("e", "ee", "s", "es"), ("s", "se"))),
    "IK": ((), ("s",), (("e", "es", "s", "ss"), ("e", "ee", "se"))),
}


class NoiseError(Exception):
    """A protocol error: wrong turn, malformed message, exhausted nonce."""


class DecryptError(NoiseError):
    """A ciphertext that fails authentication."""


# --- the crypto functions (section 4) ---------------------------------------

def generate_keypair():
    """(private, public) X25519 keys."""
    priv = os.urandom(DHLEN)
    return priv, crypto_scalarmult_base(priv)


def public_key(priv):
    return crypto_scalarmult_base(priv)


def dh(priv, pub):
    """X25519; PyNaCl raises (RuntimeError) for an all-zero output, which the
    specification allows."""
    return crypto_scalarmult(priv, pub)


def nonce_bytes(n):
    """ChaChaPoly's 96-bit nonce: 32 bits of zeros, then @n little-endian."""
    return b"\0\0\0\0" + n.to_bytes(8, "little")


def encrypt(k, n, ad, plaintext):
    return crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, ad, nonce_bytes(n), k)


def decrypt(k, n, ad, ciphertext):
    try:
        return crypto_aead_chacha20poly1305_ietf_decrypt(ciphertext, ad, nonce_bytes(n), k)
    except CryptoError as e:
        raise DecryptError("authentication failed") from e


def hash_(data):
    return hashlib.blake2b(data, digest_size=HASHLEN).digest()


def hmac_hash(key, data):
    """HMAC-BLAKE2b per RFC 2104 (block size 128)."""
    if len(key) > BLOCKLEN:
        key = hash_(key)
    key = key.ljust(BLOCKLEN, b"\0")
    ipad = bytes(b ^ 0x36 for b in key)
    opad = bytes(b ^ 0x5C for b in key)
    return hash_(opad + hash_(ipad + data))


def hkdf(chaining_key, input_key_material, num_outputs):
    """The specification's HKDF: 2 or 3 outputs of HASHLEN bytes."""
    assert num_outputs in (2, 3)
    temp_key = hmac_hash(chaining_key, input_key_material)
    out = [hmac_hash(temp_key, b"\x01")]
    out.append(hmac_hash(temp_key, out[0] + b"\x02"))
    if num_outputs == 3:
        out.append(hmac_hash(temp_key, out[1] + b"\x03"))
    return tuple(out)


# --- section 5.1 -------------------------------------------------------------

class CipherState:
    """k (None when empty) and the counter n."""

    def __init__(self, k=None):
        self.initialize_key(k)

    def initialize_key(self, k):
        assert k is None or len(k) == KEYLEN
        self.k = k
        self.n = 0

    def has_key(self):
        return self.k is not None

    def set_nonce(self, n):
        self.n = n

    def encrypt_with_ad(self, ad, plaintext):
        if self.k is None:
            return bytes(plaintext)
        if self.n >= MAX_NONCE:
            raise NoiseError("nonce exhausted")
        out = encrypt(self.k, self.n, ad, plaintext)
        self.n += 1
        return out

    def decrypt_with_ad(self, ad, ciphertext):
        """The counter advances only when the message authenticates."""
        if self.k is None:
            return bytes(ciphertext)
        if self.n >= MAX_NONCE:
            raise NoiseError("nonce exhausted")
        out = decrypt(self.k, self.n, ad, ciphertext)
        self.n += 1
        return out

    # Transport messages have an empty AD.
    def encrypt(self, plaintext):
        return self.encrypt_with_ad(b"", plaintext)

    def decrypt(self, ciphertext):
        return self.decrypt_with_ad(b"", ciphertext)

    # Explicit nonces (out-of-order transports, tests of replays and
    # skipped counters): the counter n is neither used nor changed.
    def encrypt_at(self, n, plaintext, ad=b""):
        if n >= MAX_NONCE:
            raise NoiseError("nonce reserved")
        return encrypt(self.k, n, ad, plaintext)

    def decrypt_at(self, n, ciphertext, ad=b""):
        if n >= MAX_NONCE:
            raise NoiseError("nonce reserved")
        return decrypt(self.k, n, ad, ciphertext)

    def rekey(self):
        """k = the first 32 bytes of ENCRYPT(k, maxnonce, zerolen, zeros)."""
        self.k = encrypt(self.k, MAX_NONCE, b"", bytes(KEYLEN))[:KEYLEN]


# --- section 5.2 -------------------------------------------------------------

class SymmetricState:
    def __init__(self, protocol_name):
        name = protocol_name.encode("ascii") if isinstance(protocol_name, str) else protocol_name
        if len(name) <= HASHLEN:
            self.h = name.ljust(HASHLEN, b"\0")
        else:
            self.h = hash_(name)
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, input_key_material):
        self.ck, temp_k = hkdf(self.ck, input_key_material, 2)
        self.cipher.initialize_key(temp_k[:KEYLEN])

    def mix_hash(self, data):
        self.h = hash_(self.h + data)

    def mix_key_and_hash(self, input_key_material):
        self.ck, temp_h, temp_k = hkdf(self.ck, input_key_material, 3)
        self.mix_hash(temp_h)
        self.cipher.initialize_key(temp_k[:KEYLEN])

    def get_handshake_hash(self):
        return self.h

    def encrypt_and_hash(self, plaintext):
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext):
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self):
        """(c1, c2): the initiator sends with c1, the responder with c2."""
        temp_k1, temp_k2 = hkdf(self.ck, b"", 2)
        return CipherState(temp_k1[:KEYLEN]), CipherState(temp_k2[:KEYLEN])


# --- section 5.3 -------------------------------------------------------------

class HandshakeState:
    """One side of a handshake.

    @pattern: "XX", "IK" (also "NN", "KK"); @initiator: our role;
    @prologue: bytes; @s: our static X25519 private key (None for NN);
    @rs: the peer's static public key, when the pattern has it in a
    pre-message (IK for the initiator, KK); @e: our ephemeral private key,
    for test vectors only (else a fresh one).

    write_message(payload) -> bytes and read_message(message) -> payload
    alternate as the pattern says; once the last message is written or read,
    .complete is true, split() gives the spec's (c1, c2) and .send / .recv
    the transport CipherStates of our role.  .rs is the peer's static public
    key once learnt, .handshake_hash the final h."""

    def __init__(self, pattern, initiator, prologue=b"", s=None, rs=None, e=None,
                 protocol_name=None):
        if pattern not in PATTERNS:
            raise ValueError("unsupported pattern %r" % pattern)
        self.pattern = pattern
        self.initiator = bool(initiator)
        self.protocol_name = protocol_name or "Noise_%s_25519_ChaChaPoly_BLAKE2b" % pattern
        self.symmetric = SymmetricState(self.protocol_name)
        self.symmetric.mix_hash(bytes(prologue))

        self.s = s
        self.s_pub = public_key(s) if s is not None else None
        self.e = e
        self.e_pub = None
        self.rs = rs
        self.re = None

        pre_i, pre_r, self.messages = PATTERNS[pattern]
        for pre, theirs in ((pre_i, not self.initiator), (pre_r, self.initiator)):
            for token in pre:
                if token != "s":
                    raise ValueError("unsupported pre-message token %r" % token)
                key = self.rs if theirs else self.s_pub
                if key is None:
                    raise ValueError("pattern %s needs the %s static key"
                                     % (pattern, "remote" if theirs else "local"))
                self.symmetric.mix_hash(key)

        self.index = 0  # the next message
        self.complete = False
        self.handshake_hash = None
        self.send = None
        self.recv = None

    # The direction of message @index: even indices are the initiator's.
    def _our_turn(self):
        return (self.index % 2 == 0) == self.initiator

    def _dh(self, token):
        local, remote = {
            "ee": (self.e, self.re),
            "ss": (self.s, self.rs),
            "es": (self.e, self.rs) if self.initiator else (self.s, self.re),
            "se": (self.s, self.re) if self.initiator else (self.e, self.rs),
        }[token]
        if local is None or remote is None:
            raise NoiseError("missing key for %s" % token)
        self.symmetric.mix_key(dh(local, remote))

    def _advance(self):
        self.index += 1
        if self.index == len(self.messages):
            self.complete = True
            self.handshake_hash = self.symmetric.get_handshake_hash()
            c1, c2 = self.split()
            self.send, self.recv = (c1, c2) if self.initiator else (c2, c1)

    def write_message(self, payload=b""):
        if self.complete or not self._our_turn():
            raise NoiseError("not our turn to write")
        out = bytearray()
        for token in self.messages[self.index]:
            if token == "e":
                if self.e is None:
                    self.e, self.e_pub = generate_keypair()
                else:
                    self.e_pub = public_key(self.e)
                out += self.e_pub
                self.symmetric.mix_hash(self.e_pub)
            elif token == "s":
                out += self.symmetric.encrypt_and_hash(self.s_pub)
            else:
                self._dh(token)
        out += self.symmetric.encrypt_and_hash(bytes(payload))
        if len(out) > MAX_MESSAGE:
            raise NoiseError("message too long")
        self._advance()
        return bytes(out)

    def read_message(self, message):
        if self.complete or self._our_turn():
            raise NoiseError("not our turn to read")
        if len(message) > MAX_MESSAGE:
            raise NoiseError("message too long")
        message = bytes(message)
        pos = 0
        for token in self.messages[self.index]:
            if token == "e":
                if len(message) - pos < DHLEN:
                    raise NoiseError("message too short")
                self.re = message[pos:pos + DHLEN]
                pos += DHLEN
                self.symmetric.mix_hash(self.re)
            elif token == "s":
                n = DHLEN + (TAGLEN if self.symmetric.cipher.has_key() else 0)
                if len(message) - pos < n:
                    raise NoiseError("message too short")
                self.rs = self.symmetric.decrypt_and_hash(message[pos:pos + n])
                pos += n
            else:
                self._dh(token)
        if self.symmetric.cipher.has_key() and len(message) - pos < TAGLEN:
            raise NoiseError("message too short")
        payload = self.symmetric.decrypt_and_hash(message[pos:])
        self._advance()
        return payload

    def split(self):
        if not self.complete:
            raise NoiseError("handshake not complete")
        return self.symmetric.split()
