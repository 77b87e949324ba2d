# The kiosk's diagnostics console commands (docs/diagnostics.md): those of every
# device (diagbase) and the kiosk's own.

import diagbase
from uplink import CommandError


class Diagnostics(diagbase.Diagnostics):
    APP = "kiosk"

    def handlers(self):
        h = super().handlers()
        h["purge"] = self.purge
        h["face"] = self.face
        return h

    def purge(self, args, line):
        if len(args) != 1:
            raise CommandError("purge PERSON_ID: deletes that person's check-ins from the kiosk")
        return {"person": args[0], "erased": self.app.purge(args[0])}

    def face(self, args, line):
        """What the face module's line has carried since boot."""
        if args:
            raise CommandError("face takes no arguments")
        return self.app.face_counts()
