# ECDSA P-256 signing for tests, on the firmware's own curve arithmetic, so that
# a firmware test signs releases inside MicroPython too. A fixed test key, a
# deterministic nonce: never for real keys (`parkctl release` signs with the
# `cryptography` package). tests/test_release_properties.py checks that its
# signatures verify with `cryptography`.

import hashlib

import p256

TEST_KEY = 0x1D3A5F7092B4C6D8E0F21324354657687988A9BACBDCEDFE0F1E2D3C4B5A6978


def _affine(X, Y, Z):
    zi = p256._inverse(Z, p256.P)
    zi2 = zi * zi % p256.P
    return X * zi2 % p256.P, Y * zi2 * zi % p256.P


def _mul(k):
    """k*G, affine."""
    X, Y, Z = 0, 1, 0
    for i in range(255, -1, -1):
        X, Y, Z = p256._double(X, Y, Z)
        if (k >> i) & 1:
            X, Y, Z = p256._add(X, Y, Z, p256.GX, p256.GY)
    return _affine(X, Y, Z)


def public(d=TEST_KEY):
    """The uncompressed public key (65 bytes) of the private key d."""
    x, y = _mul(d)
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def sign(data, d=TEST_KEY):
    """64 bytes, r then s: an ECDSA signature of sha256(data)."""
    e = int.from_bytes(hashlib.sha256(data).digest(), "big")
    seed = d.to_bytes(32, "big") + e.to_bytes(32, "big")
    while True:
        seed = hashlib.sha256(seed).digest()
        k = int.from_bytes(seed, "big") % p256.N
        if not k:
            continue
        r = _mul(k)[0] % p256.N
        s = p256._inverse(k, p256.N) * (e + r * d) % p256.N
        if r and s:
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
