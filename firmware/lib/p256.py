# ECDSA verification on the NIST P-256 curve (secp256r1) with SHA-256, in
# MicroPython's big ints: how a device checks that a release was signed by the
# park's release key (docs/updates.md). Verification only; the device never holds
# a private key, so nothing here needs to be constant-time.
#
# Loaded only while an update runs, then dropped from sys.modules (release.py's
# caller does it): the lamp has no heap to spare for code it uses once a month.
#
# Points are kept in Jacobian coordinates (X, Y, Z for x = X/Z^2, y = Y/Z^3) so the
# loop needs no modular inverse; u1*G + u2*Q is one pass over the bits with
# G, Q and G+Q precomputed (Shamir's trick): 256 doublings and about 192 additions.

# The curve y^2 = x^3 - 3x + b over GF(P), its base point G of prime order N
# (FIPS 186-4, D.1.2.3). Not const(): MicroPython's const() takes small ints only.
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5


def _inverse(a, m):
    """a^-1 mod m (m prime, a not a multiple of m), by the extended Euclidean
    algorithm: the same code whether or not the port has pow() with 3 args."""
    a %= m
    x0, x1, r0, r1 = 0, 1, m, a
    while r1:
        q = r0 // r1
        r0, r1 = r1, r0 - q * r1
        x0, x1 = x1, x0 - q * x1
    if r0 != 1:
        raise ValueError("not invertible")
    return x0 % m


def on_curve(x, y):
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x - 3 * x + B)) % P == 0


def public_key(data):
    """(x, y) of an uncompressed public key (65 bytes: 04, x, y); ValueError if it
    is not a point of the curve."""
    if len(data) != 65 or data[0] != 4:
        raise ValueError("a P-256 public key is 65 bytes, 04 then x and y")
    x = int.from_bytes(data[1:33], "big")
    y = int.from_bytes(data[33:], "big")
    if not on_curve(x, y):
        raise ValueError("the public key is not a point of P-256")
    return x, y


def _double(X, Y, Z):
    # dbl-2001-b (a = -3), Hyperelliptic's explicit formulas database.
    p = P
    if not Z or not Y:
        return 0, 1, 0
    delta = Z * Z % p
    gamma = Y * Y % p
    beta = X * gamma % p
    alpha = 3 * (X - delta) * (X + delta) % p
    X3 = (alpha * alpha - 8 * beta) % p
    Z3 = ((Y + Z) * (Y + Z) - gamma - delta) % p
    Y3 = (alpha * (4 * beta - X3) - 8 * gamma * gamma) % p
    return X3, Y3, Z3


def _add(X1, Y1, Z1, x2, y2):
    """(X1, Y1, Z1) + the affine point (x2, y2) (madd-2004-hmv)."""
    p = P
    if not Z1:
        return x2, y2, 1
    zz = Z1 * Z1 % p
    h = (x2 * zz - X1) % p
    r = (y2 * zz * Z1 - Y1) % p
    if not h:
        return _double(X1, Y1, Z1) if not r else (0, 1, 0)
    hh = h * h % p
    hhh = h * hh % p
    v = X1 * hh % p
    X3 = (r * r - hhh - 2 * v) % p
    Y3 = (r * (v - X3) - Y1 * hhh) % p
    return X3, Y3, Z1 * h % p


def verify(key, digest, sig):
    """True if `sig` (64 bytes: r then s, big-endian) is an ECDSA signature of the
    32-byte SHA-256 `digest` by the key (x, y) that public_key() returned."""
    if len(sig) != 64 or len(digest) != 32:
        return False
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if not (0 < r < N and 0 < s < N):
        return False
    qx, qy = key
    e = int.from_bytes(digest, "big")  # 256 bits: no truncation for P-256
    w = _inverse(s, N)
    u1 = e * w % N
    u2 = r * w % N
    X, Y, Z = _add(GX, GY, 1, qx, qy)
    if not Z:  # Q = -G: G+Q is the point at infinity, kept as such
        gq = None
    else:
        zi = _inverse(Z, P)
        zi2 = zi * zi % P
        gq = (X * zi2 % P, Y * zi2 * zi % P)
    X, Y, Z = 0, 1, 0
    for i in range(255, -1, -1):  # int has no bit_length() in MicroPython
        X, Y, Z = _double(X, Y, Z)
        b1 = (u1 >> i) & 1
        b2 = (u2 >> i) & 1
        if b1 and b2:
            if gq is not None:
                X, Y, Z = _add(X, Y, Z, gq[0], gq[1])
        elif b1:
            X, Y, Z = _add(X, Y, Z, GX, GY)
        elif b2:
            X, Y, Z = _add(X, Y, Z, qx, qy)
    if not Z:
        return False
    # x = X/Z^2; compare x mod N with r without an inverse: r*Z^2 == X, or
    # (r+N)*Z^2 == X when x landed in [N, P).
    zz = Z * Z % P
    if r * zz % P == X:
        return True
    return r + N < P and (r + N) * zz % P == X
