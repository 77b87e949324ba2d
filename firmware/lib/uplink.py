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
# docs/security.md); one that does not is refused with the reason and counted;
# what the device publishes carries its own authenticator.
#
# Each command once. step(), which the pass calls after what the commands did
# is on flash, writes their replies to the reply log on flash, then sends them;
# a command is acknowledged (its PUBACK, held by the client) only once the
# broker has its reply. So a cut before that makes the broker send the command
# again after the reboot, and a command whose id is in the log (or still in the
# queue) is answered with its first reply, not run again: the log keeps the
# last LOG_EACH to 2 * LOG_EACH replies, across reboots. A reply too big for a
# packet is replaced by one that says so. With REPLIES_KEPT replies waiting,
# commands are left with the broker (not acknowledged), which sends them again
# once everything taken is answered and a new connection made: none dropped.

import json
import sys

from ticks import diff

UNIX_2000 = 946684800  # seconds from 1970 to 2000: the protocol speaks Unix time
STATE_MIN_MS = 1000  # the retained state is published at most this often
REPLIES_KEPT = 8  # replies waiting for room in the MQTT client; then commands wait at the broker
# Replies in each of the two reply log files: at least as many as the commands
# taken and not yet acknowledged can be (REPLIES_KEPT waiting, 8 in flight), all
# of which the broker sends again after a cut.
LOG_EACH = 16
NAME_MAX = 32  # a command name longer than this is not said back in a reply too big
CMDREPLY = "cmdreply"  # the module that reads, runs and answers a command: loaded when one comes


class CommandError(Exception):
    pass


def _ignore(kind, aid):
    pass


class ReplyLog:
    """What RAM keeps of the reply log on flash (cmdreply.py reads and writes
    it): the files' names, a small hash of each id in it (None until the first
    command after boot), the lines in the current file."""

    def __init__(self, os_module, path):
        self.os = os_module
        self.path = path
        self.old = path + ".old"
        self.lines = 0
        self.ids = None


class Uplink:
    def __init__(self, client, journal, base, device, state=None, on_delivered=_ignore, log=None, auth=None):
        """base: the topic prefix, park/<site>/lamp/<device>; state(): the state
        to publish (retained); on_delivered(kind, id): the broker has an event;
        log: the ReplyLog (None: replies are remembered only while queued);
        auth: the cmdauth.Auth every command must satisfy and that signs what is
        published (docs/security.md). The apps always give one (link.py); None,
        for tests of the reply machinery alone, checks and signs nothing."""
        self.client = client
        self.auth = auth
        self.journal = journal
        self.base = base
        self.device = device
        self.handlers = {}  # command name -> fn(message dict)
        self.topics = {}  # other topics listened to -> fn(payload bytes)
        self.state = state
        self.on_delivered = on_delivered
        self.log = log
        self.commands = 0  # taken, good or bad (each answered)
        self.bad_commands = 0
        self.repeated = 0  # an id seen before: answered with the first reply
        self.stray = 0
        self.failed = 0  # messages whose handler raised (refused, or dropped)
        self.oversized = 0  # replies too big for a packet, replaced by one that says so
        self.log_errors = 0  # replies the flash refused to log (sent all the same)
        self._sending = {}  # packet id -> (seq, kind, id) of events in flight
        self._seqs = {}  # seqs in flight
        self._replies = []  # (id key or None, reply payload, its PUBACK) not yet accepted by the client
        self._unlogged = 0  # the last ones of _replies not yet in the log
        # The PUBACKs the client holds, in order (this connection's): 1 once the
        # message is done with (a command: the broker has its reply), else 0.
        self._acks = []
        self._acked = 0  # PUBACKs sent before _acks[0] on this connection
        self._conn = 0  # client.connects when _acks began
        self._reply_pids = {}  # packet id of a reply in flight -> its command's PUBACK
        self._ack = None  # (connection, index) of the command being handled's PUBACK
        self._cmd = None  # cmdreply, while this pass has it loaded
        self._room = getattr(client, "max_packet", 2048) - 9 - len(base) - len("/reply")
        self._state_dirty = True
        self._state_at = None
        self._was_up = False
        client.on_puback = self._puback
        client.on_message = self._message
        client.hold_acks = True
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
        """After the pass put on flash what its commands did: their replies are
        logged, then acknowledged and sent."""
        c = self.client
        if self._unlogged:
            self._cmdreply().keep(self)
        if self._cmd is not None:  # the pass's commands are done with: off the heap
            self._cmd = None
            sys.modules.pop(CMDREPLY, None)
        self._same_connection()
        n = 0
        while n < len(self._acks) and self._acks[n]:
            n += 1
        if n:
            c.ack(n)
            del self._acks[:n]
            self._acked += n
        up = c.up
        if up and not self._was_up:
            self._state_dirty = True  # a new connection: say where we are
        self._was_up = up
        if not up:
            return -1
        self._deliver()
        while self._replies:
            r = self._replies[0]
            pid = c.publish(self.base + "/reply", r[1], 1)
            if pid is None:
                break
            self._replies.pop(0)
            if r[2] is not None:
                self._reply_pids[pid] = r[2]
        if not self._replies and not self._acks and c.redeliver():
            return 0  # the commands left with the broker come again: at once
        if self._state_dirty and self.state is not None:
            if self._state_at is not None and diff(now, self._state_at) < STATE_MIN_MS:
                return STATE_MIN_MS - diff(now, self._state_at)
            topic = self.base + "/state"
            if c.publish(topic, self._seal(topic, json.dumps(self.state())), 1, True) is not None:
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
            pid = c.publish(topic, self._seal(topic, head + body[1:]), 1)
            if pid is None:
                return
            self._sending[pid] = (seq, kind, aid)
            self._seqs[seq] = True

    def _same_connection(self):
        # The client forgets its held PUBACKs with the connection (the broker
        # sends those messages again): so do we.
        n = self.client.connects
        if n != self._conn:
            self._conn = n
            self._acks = []
            self._acked = 0

    def _puback(self, pid):
        ack = self._reply_pids.pop(pid, None)
        if ack is not None:
            # A reply is with the broker: its command may be acknowledged.
            conn, i = ack
            if conn == self._conn and i >= self._acked:
                self._acks[i - self._acked] = 1
            return
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
        self._ack = None
        try:
            fn = self.topics.get(topic)
            if fn is not None:
                if self.client.qos:
                    self._same_connection()
                    self._acks.append(1)  # done with once its handler returns
                fn(payload)
            elif topic == self.base + "/cmd":
                if len(self._replies) >= REPLIES_KEPT:
                    # No room for its reply: the broker keeps it (QoS 1) until
                    # step() has sent these; a QoS 0 one is lost, and counted.
                    return False
                try:
                    cmd = self._cmdreply()
                except MemoryError:
                    return False  # no room for the code to read it now: the same
                if self.client.qos:
                    self._same_connection()
                    self._ack = (self._conn, self._acked + len(self._acks))
                    self._acks.append(0)
                why = None
                if self.auth is not None:  # checked here, resident: cmdreply is loaded per command
                    body, why = self.auth.signed(topic, payload)
                    if body is not None:
                        payload = body
                cmd.command(self, payload, why)
            else:
                self.stray += 1  # not ours to act on (a broker may echo a will)
                if self.client.qos:
                    self._same_connection()
                    self._acks.append(1)
        except Exception as e:  # noqa: BLE001 - a handler's fault, said as the client says its own
            self.failed += 1
            a = self._ack
            if a is not None and a[0] == self._conn and 0 <= a[1] - self._acked < len(self._acks):
                # No reply will come for it: acknowledged all the same, or the
                # commands after it never would be (refused, and counted).
                self._acks[a[1] - self._acked] = 1
            self._ack = None
            self.client.on_event("uplink", "message on %s dropped: %s: %s" % (topic, type(e).__name__, e))

    def _seal(self, topic, text):
        return text if self.auth is None else self.auth.seal(topic, text)

    def _seal_reply(self, text):
        return self._seal(self.base + "/reply", text)

    def _cmdreply(self):
        m = self._cmd
        if m is None:
            import cmdreply

            m = self._cmd = cmdreply
        return m
