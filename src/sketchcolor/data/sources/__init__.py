"""Real data that installs offline (no downloads at run time)."""
