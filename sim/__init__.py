"""mqtt-ha-twin simulator: long-run SimPy model, vectorised failover transients, analytics."""

__version__ = "0.1.0"


def source_fingerprint() -> str:
    """A hash of the simulator's source: caches of its results are valid only for the same code."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        import hashlib
        from pathlib import Path

        h = hashlib.sha256(__version__.encode())
        for path in sorted(Path(__file__).parent.glob("*.py")):
            h.update(path.read_bytes())
        _FINGERPRINT = h.hexdigest()
    return _FINGERPRINT


_FINGERPRINT: str | None = None


def write_atomic(path, data: bytes) -> None:
    """Write a cache file so that no reader ever sees half of it (another process, or a run
    stopped mid-write): a file of this process's own, renamed over the target."""
    import os
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
