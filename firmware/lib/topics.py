# Names the protocol with the centre puts into MQTT topics, and broker URLs
# (docs/protocol.md).


def topic_word(s):
    """Letters, digits, - and _ only: safe as one level of a topic."""
    for ch in s:
        if not (ch.isalpha() or ch.isdigit() or ch in "-_"):
            return False
    return len(s) > 0


def broker_url(url):
    """(tls, host, port) from mqtt://HOST[:PORT] or mqtts://HOST[:PORT]; ValueError names the problem."""
    tls = url.startswith("mqtts://")
    if not tls and not url.startswith("mqtt://"):
        raise ValueError("%r must start with mqtt:// or mqtts://" % url)
    rest = url[8 if tls else 7 :].rstrip("/")
    host = rest
    port = 8883 if tls else 1883
    if ":" in rest:
        host, p = rest.rsplit(":", 1)
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ValueError("port %r is not a number from 1 to 65535" % p)
        port = int(p)
    if not host or "/" in host or "@" in host:
        raise ValueError("%r has no usable host name" % url)
    return (tls, host, port)
