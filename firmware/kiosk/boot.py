# Runs before main.py at every reset. Kept minimal on purpose: anything that can
# fail here stops main.py from ever starting, and with it the kiosk.
