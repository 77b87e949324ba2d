"""parkctl: the host-side tools for park devices (build, flash, deploy, diagnose, simulate)."""

__version__ = "0.1.0"
