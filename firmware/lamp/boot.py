# Runs before main.py at every reset. Kept small on purpose: anything that can
# fail here stops main.py from ever starting.
#
# It finishes a switch to a new app, or a rollback, that a reset or a power cut
# interrupted (staging.py, docs/updates.md): until then the board may have no
# whole app. A switch never leaves the board without this file (staging.py
# replaces it in one rename), but the staging module itself may be half-way
# between the old app, the new one and /prev: it is looked for in all three.
import os

try:
    # littlefs settles a rename a cut interrupted at the first write it is asked
    # for: until then a lookup can miss the marker. /stage is kept for good, so
    # nothing is written when all is well.
    os.mkdir("/stage")
except OSError:
    pass
try:
    os.stat("/stage/switch")
except OSError:
    pass
else:
    import sys

    sys.path.extend(("/prev/lib", "/stage/files/lib"))
    import staging

    staging.Staging(os).recover()
    del sys.path[-2:]
    sys.modules.pop("staging", None)
    sys.modules.pop("release", None)
    del staging, sys
