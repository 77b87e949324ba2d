# A device's link to the centre, for either app: Wi-Fi, NTP, the MQTT client
# and the uplink (events from the journal, commands, the retained state), built
# from the configuration's network section and stepped in two halves by the
# app's pass: connect() first (a clock NTP steps is acted on in the same pass),
# exchange() last (what the pass journaled goes out at once).

import os

from apploop import earliest, log_event
from mqtt import Client
from netclock import NtpSync, Station
from uplink import ReplyLog, Uplink

REPLIES = "/replies"  # the reply log (uplink.ReplyLog): commands answered once, across reboots

NO_CREDENTIALS = "no MQTT credentials configured (network.user, network.password): not connecting"


class Link:
    def __init__(self, cfg, board, clock, base, device, journal, state, on_delivered, auth, max_packet=2048):
        """base: the topic prefix, park/<site>/<app>/<device>."""
        self.cfg = cfg
        self.board = board
        self.station = self.ntp = self.client = self.uplink = None
        if board.wlan is not None:
            self.station = Station(board.wlan, cfg.ssid, cfg.wifi_key, log_event)
            self.ntp = NtpSync(clock, board.ntp_time, int(cfg.ntp_interval), log_event)
        if not cfg.broker_host:
            log_event("mqtt", "no broker configured: events stay in the journal")
        elif not (cfg.mqtt_user and cfg.mqtt_password):
            # No default credentials, and no anonymous login: the device stays off
            # the broker and says why (status, console); events stay in the journal.
            log_event("mqtt", NO_CREDENTIALS)
        elif self.station is not None:
            host, port = cfg.broker_host, cfg.broker_port
            ca = cfg.broker_ca if cfg.broker_tls else None
            self.client = Client(
                lambda: board.open_socket(host, port, ca),
                device,
                int(cfg.keepalive),
                cfg.mqtt_user or None,
                cfg.mqtt_password or None,
                will=(base + "/status", "offline", True),
                birth=(base + "/status", "online", True),
                on_event=log_event,
                max_packet=max_packet,
            )
            log = ReplyLog(os, REPLIES)
            self.uplink = Uplink(self.client, journal, base, device, state, on_delivered, log, auth)

    @property
    def up(self):
        return self.client is not None and self.client.up

    def changed(self):
        if self.uplink is not None:
            self.uplink.changed()

    def connect(self, now, deadline):
        """Wi-Fi, NTP and the MQTT connection; returns the deadline, moved earlier as they need."""
        st = self.station
        ntp = self.ntp
        c = self.client
        if st is None or ntp is None:
            return deadline
        link = st.step(now)
        if c is None or not c.up:
            # With MQTT up its keepalive notices a lost link, and every pass
            # checks it anyway: no wake-ups of its own for the link check.
            deadline = earliest(now, deadline, link)
        deadline = earliest(now, deadline, ntp.step(now, st.up))
        if c is not None:
            if st.up:
                deadline = earliest(now, deadline, c.step(now))
            else:
                c.drop("Wi-Fi down")
        return deadline

    def exchange(self, now, deadline):
        """Events, replies and the state out, commands in; returns the deadline
        (now, when a command came: it may change what the device shows)."""
        up = self.uplink
        c = self.client
        if up is None or c is None:
            return deadline
        handled = up.commands
        deadline = earliest(now, deadline, up.step(now))
        if c.up:
            c.send()  # what the uplink queued goes out now
        if up.commands != handled:
            deadline = now
        self.board.watch(c.sock)
        return deadline

    def status(self):
        c = self.client
        if c is None:
            if not self.cfg.broker_host:
                return "no broker configured"
            if not (self.cfg.mqtt_user and self.cfg.mqtt_password):
                return NO_CREDENTIALS
            return "no Wi-Fi configured"
        if c.up:
            return "connected"
        return "not connected: %s" % (c.last_error or "connecting")
