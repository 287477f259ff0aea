"""Calibration: lab result files -> model input files (failover mechanism in sim/calibration.py
for now; load costs here). Names no broker: the lab writes broker-neutral facts."""
