"""The park simulator: a virtual ESP32 that runs the unmodified firmware (docs/sim.md)."""
