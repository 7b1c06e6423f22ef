"""The long-running campaign process: the runner (``alem loop``), its lock, heartbeat and signal
handling. The steps it runs live in :mod:`alem.campaign`."""
