# The device's side of the protocol with the centre (docs/protocol.md), over an
# mqtt.Client: events from the journal, commands and their replies, the state.
#
# The app journals each event first; step() delivers undelivered events, oldest
# first, as QoS 1 messages, and marks each delivered in the journal when its
# PUBACK comes. A reboot, a lost connection or a lost PUBACK means the event is
# sent again (at least once); its id lets the centre drop the copy.
#
# Commands arrive on .../cmd as JSON {"id", "cmd", ...}; a handler returns None
# (done), a dict (done, with a result) or raises CommandError (refused, with the
# reason). Every command gets a reply on .../reply; one that cannot be read is
# refused, counted and changes nothing. A command acts only if it carries the
# device's authenticator and a counter above the last one accepted (cmdauth,
# docs/security.md); one that does not is refused with the reason and counted.

import json

from ticks import diff

UNIX_2000 = 946684800  # seconds from 1970 to 2000: the protocol speaks Unix time
STATE_MIN_MS = 1000  # the retained state is published at most this often
REPLIES_KEPT = 8


class CommandError(Exception):
    pass


def _ignore(kind, aid):
    pass


class Uplink:
    def __init__(self, client, journal, base, device, auth, state=None, on_delivered=_ignore):
        """base: the topic prefix, park/<site>/lamp/<device>; auth: a cmdauth.Auth,
        which every command must satisfy; state(): the state to publish
        (retained); on_delivered(kind, id): the broker has an event."""
        self.client = client
        self.auth = auth
        self.journal = journal
        self.base = base
        self.device = device
        self.handlers = {}  # command name -> fn(message dict)
        self.topics = {}  # other topics listened to -> fn(payload bytes)
        self.state = state
        self.on_delivered = on_delivered
        self.commands = 0  # received, good or bad
        self.bad_commands = 0
        self.stray = 0
        self.failed = 0  # messages whose handler raised (refused, or dropped)
        self.replies_dropped = 0
        self._sending = {}  # packet id -> (seq, kind, id) of events in flight
        self._seqs = {}  # seqs in flight
        self._replies = []  # reply payloads not yet accepted by the client
        self._state_dirty = True
        self._state_at = None
        self._was_up = False
        client.on_puback = self._puback
        client.on_message = self._message
        client.subscribe(base + "/cmd", 1)

    def listen(self, topic, fn):
        """Messages on `topic` (the centre's, not a command) go to fn(payload)."""
        self.topics[topic] = fn
        self.client.subscribe(topic, 1)

    def changed(self):
        """The state is different: publish it (soon)."""
        self._state_dirty = True

    # --- the loop ----------------------------------------------------------

    def step(self, now):
        c = self.client
        up = c.up
        if up and not self._was_up:
            self._state_dirty = True  # a new connection: say where we are
        self._was_up = up
        if not up:
            return -1
        self._deliver()
        while self._replies:
            if c.publish(self.base + "/reply", self._replies[0], 1) is None:
                break
            self._replies.pop(0)
        if self._state_dirty and self.state is not None:
            if self._state_at is not None and diff(now, self._state_at) < STATE_MIN_MS:
                return STATE_MIN_MS - diff(now, self._state_at)
            topic = self.base + "/state"
            if c.publish(topic, self.auth.seal(topic, json.dumps(self.state())), 1, True) is not None:
                self._state_dirty = False
                self._state_at = now
        return -1

    def _deliver(self):
        c = self.client
        j = self.journal
        room = c.room()
        if room <= 0 or len(j.pending) <= len(self._seqs):
            return
        for seq, aid, kind, body in j.undelivered(room + len(self._seqs)):
            if seq in self._seqs:
                continue
            head = '{"id": "%s", "device": "%s", "type": "%s", ' % (aid, self.device, kind)
            topic = self.base + "/event"
            pid = c.publish(topic, self.auth.seal(topic, head + body[1:]), 1)
            if pid is None:
                return
            self._sending[pid] = (seq, kind, aid)
            self._seqs[seq] = True

    def _puback(self, pid):
        sent = self._sending.pop(pid, None)
        if sent is None:
            return
        seq, kind, aid = sent
        self._seqs.pop(seq, None)
        self.on_delivered(kind, aid)
        self.journal.delivered(seq)

    # --- commands ----------------------------------------------------------

    def _message(self, topic, payload):
        # Nothing a message carries may raise into the MQTT client: the packet
        # would be read again at every pass, and the watchdog reset the board.
        try:
            fn = self.topics.get(topic)
            if fn is not None:
                fn(payload)
            elif topic == self.base + "/cmd":
                self._command(payload)
            else:
                self.stray += 1  # not ours to act on (a broker may echo a will)
        except Exception as e:  # noqa: BLE001 - a handler's fault, said as the client says its own
            self.failed += 1
            self.client.on_event("uplink", "message on %s dropped: %s: %s" % (topic, type(e).__name__, e))

    def _command(self, payload):
        self.commands += 1
        cid = None
        name = None
        try:
            body, why = self.auth.signed(self.base + "/cmd", payload)
            try:
                msg = json.loads(payload if body is None else body)
            except ValueError:
                raise CommandError(why or "not JSON")
            if not isinstance(msg, dict):
                raise CommandError(why or "not a JSON object")
            cid = msg.get("id")
            name = msg.get("cmd")
            named = isinstance(name, str)
            if not named:
                name = None  # the reply carries back only a name
            if not isinstance(cid, str) or not cid:
                cid = None
            if why:
                # Said back with the id and name it claims, so the centre sees the
                # refusal; nothing in it was acted on.
                raise CommandError(why)
            if cid is None:
                raise CommandError('"id" must be a non-empty string')
            if not named:
                raise CommandError('"cmd" must be the command\'s name (a string)')
            why = self.auth.fresh(msg.get("ctr"))
            if why:
                raise CommandError(why)
            fn = self.handlers.get(name)
            if fn is None:
                raise CommandError(
                    "unknown command %r (known: %s)" % (name, ", ".join(sorted(self.handlers)))
                )
            try:
                result = fn(msg)
            except CommandError:
                raise
            except Exception as e:  # noqa: BLE001 - a fault inside: refused with it, as the console does
                self.failed += 1
                raise CommandError("failed: %s: %s" % (type(e).__name__, e))
        except CommandError as e:
            self.bad_commands += 1
            self._reply({"id": cid, "cmd": name, "ok": False, "reason": str(e)})
            return
        reply = {"id": cid, "cmd": name, "ok": True}
        if result:
            reply["result"] = result
        self._reply(reply)
        self._state_dirty = True

    def _reply(self, obj):
        if len(self._replies) >= REPLIES_KEPT:
            self._replies.pop(0)
            self.replies_dropped += 1
        self._replies.append(self.auth.seal(self.base + "/reply", json.dumps(obj)))
