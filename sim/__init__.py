"""mqtt-ha-twin simulator: long-run SimPy model, vectorised failover transients, analytics."""

__version__ = "0.1.0"
