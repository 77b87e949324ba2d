# A command from the centre read, run once and answered (docs/protocol.md):
# loaded by the uplink when a command comes and forgotten at the end of that
# pass (Uplink._cmdreply), so that none of this code is on the heap while the
# lamp only lights and raises alarms.
#
# The reply log (uplink.ReplyLog holds what RAM keeps of it) is on flash, one
# reply a line, b"<id as JSON>\t<reply>\n": appended to <path>; after LOG_EACH
# lines the file is renamed to <path>.old (one atomic step) and a new one
# started. An append is committed whole or not at all (littlefs), so a cut
# leaves every line whole.

import json

from uplink import LOG_EACH, NAME_MAX, CommandError


def _key(cid):
    # A command id as the log writes it (JSON: no tab or newline in it).
    return json.dumps(cid).encode()


def _small(key):
    # What RAM keeps of an id: a small int, no heap (a hash may collide: the
    # log, which has the id itself, decides).
    return hash(key) & 0x3FFFFFFF


def _ids(log):
    """The log's ids (read at the first command after boot)."""
    ids = log.ids
    if ids is None:
        ids = []
        n = 0
        for p in (log.old, log.path):
            n = 0
            try:
                with open(p, "rb") as f:
                    while True:
                        line = f.readline()
                        if not line:
                            break
                        tab = line.find(b"\t")
                        if tab > 0:
                            ids.append(_small(line[:tab]))
                            n += 1
            except OSError:
                pass
        log.ids = ids
        log.lines = n
    return ids


def _find(log, key):
    """The reply logged for the id `key`, or None."""
    if _small(key) not in _ids(log):
        return None
    head = key + b"\t"
    for p in (log.path, log.old):
        try:
            with open(p, "rb") as f:
                while True:
                    line = f.readline()
                    if not line:
                        break
                    if line.startswith(head):
                        return line[len(head) : -1]
        except OSError:
            pass
    return None


def keep(up):
    """The replies of this pass's commands to the log on flash, before they go out."""
    n = up._unlogged
    up._unlogged = 0
    log = up.log
    if log is None:
        return
    new = [r for r in up._replies[len(up._replies) - n :] if r[0] is not None]
    if not new:
        return
    try:
        ids = _ids(log)
        if log.lines >= LOG_EACH:
            log.os.rename(log.path, log.old)
            del ids[: len(ids) - log.lines]  # those of the file gone
            log.lines = 0
        with open(log.path, "ab") as f:
            for r in new:
                f.write(r[0])
                f.write(b"\t")
                f.write(r[1])
                f.write(b"\n")
        for r in new:
            ids.append(_small(r[0]))
            log.lines += 1
    except OSError as e:
        # Sent all the same: a reply kept back for ever is worse than one that
        # a reboot may not remember.
        up.log_errors += 1
        up.client.on_event("uplink", "replies not logged: %s" % e)


def command(up, payload, why=None):
    """Read, run (unless its id was seen) and answer one command; why: the reason
    its authenticator was refused (cmdauth), if it was."""
    up.commands += 1
    cid = None
    name = None
    try:
        try:
            msg = json.loads(payload)
        except ValueError:
            raise CommandError(why or "not JSON")
        except Exception as e:  # noqa: BLE001 - RecursionError (CPython), RuntimeError or MemoryError (MicroPython)
            raise CommandError(why or "cannot be read: nested too deeply (%s)" % type(e).__name__)
        if not isinstance(msg, dict):
            raise CommandError(why or "not a JSON object")
        cid = msg.get("id")
        name = msg.get("cmd")
        named = isinstance(name, str)
        if not named:
            name = None  # the reply carries back only a name
        if not isinstance(cid, str) or not cid or len(cid) > 64:
            long = isinstance(cid, str) and len(cid) > 64
            cid = None
            if not why:
                raise CommandError(
                    '"id" must be %s' % ("at most 64 characters" if long else "a non-empty string")
                )
        if why:
            # Said back with the id and name it claims, so the centre sees the
            # refusal; nothing in it was acted on, and the refusal is not kept as
            # that id's reply (a stranger could otherwise answer the centre's own
            # command with the same id in advance).
            up.bad_commands += 1
            _reply(up, {"id": cid, "cmd": name, "ok": False, "reason": why}, False)
            return
        key = _key(cid)
        first = _first_reply(up, key)
        if first is not None:
            # The same command again (the broker's resend): its first reply. Its
            # counter was taken the first time, so it is not checked again.
            up.repeated += 1
            up._replies.append((None, first, up._ack))  # logged already: not again
            up._unlogged += 1
            return
        if not named:
            raise CommandError('"cmd" must be the command\'s name (a string)')
        if up.auth is not None:
            why = up.auth.fresh(msg.get("ctr"), cid)
            if why:
                raise CommandError(why)
        fn = up.handlers.get(name)
        if fn is None:
            raise CommandError("unknown command %r (known: %s)" % (name, ", ".join(sorted(up.handlers))))
        try:
            result = fn(msg)
            if name == "status" and isinstance(result, dict):
                result["commands"] = _counts(up)
        except CommandError:
            raise
        except Exception as e:  # noqa: BLE001 - a fault inside: refused with it, as the console does
            up.failed += 1
            raise CommandError("failed: %s: %s" % (type(e).__name__, e))
    except CommandError as e:
        up.bad_commands += 1
        _reply(up, {"id": cid, "cmd": name, "ok": False, "reason": str(e)})
        return
    reply = {"id": cid, "cmd": name, "ok": True}
    if result:
        reply["result"] = result
    _reply(up, reply)
    up._state_dirty = True


def _counts(up):
    c = up.client
    return {
        "taken": up.commands,
        "refused": up.bad_commands,
        "repeated": up.repeated,
        # Left with the broker while replies waited (it sends them again), and
        # QoS 0 ones that came then (gone, no reply): the client counts both.
        "pushed_back": c.refused,
        "dropped": c.lost,
        "replies_too_big": up.oversized,
    }


def _first_reply(up, key):
    for r in up._replies:
        if r[0] == key:
            return r[1]
    return None if up.log is None else _find(up.log, key)


def _reply(up, obj, remember=True):
    # As bytes at once: their length is what a packet limits (UTF-8), and the
    # client would make the copy anyway.
    seal = up._seal_reply
    try:
        text = seal(json.dumps(obj)).encode()
        n = len(text)
    except MemoryError:  # a result too big for the heap itself
        text = None
        n = -1
    if text is None or n > up._room:
        text = None
        up.oversized += 1
        text = _too_big(obj, n, up._room - (0 if up.auth is None else 74), seal)
    cid = obj.get("id")
    up._replies.append((None if cid is None or not remember else _key(cid), text, up._ack))
    up._unlogged += 1


def _too_big(obj, n, room, seal):
    """A reply in place of one of n bytes (-1: too big to make), which no packet
    of `room` bytes can carry: it says so, and keeps as much of a refusal's
    reason as fits."""
    name = obj.get("cmd")
    out = {"id": obj.get("id"), "cmd": name if name is None or len(name) <= NAME_MAX else None}
    out["ok"] = ok = obj["ok"]
    out["error"] = "the reply (%s bytes) is too big to send (at most %d): its %s" % (
        n if n >= 0 else "over %d" % room,
        room,
        "result is left out" if ok else "reason is cut short",
    )
    reason = "" if ok else obj["reason"][: room // 2]
    while True:
        if not ok:
            out["reason"] = reason + "..."
        text = json.dumps(out)
        excess = len(text.encode()) - room  # room leaves the authenticator's place
        if excess <= 0 or not reason:
            return seal(text).encode()
        reason = reason[: len(reason) - excess] if excess < len(reason) else ""
