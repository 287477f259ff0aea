"""Calibration: lab result files -> model input files. `fit` (failover, per mode), `session_store`,
`replay`, `validate`, `report`, `load_costs`, `holdout_power`; `results` reads the lab's summaries.
Names no broker: the lab writes broker-neutral facts (lab/SCHEMA.md)."""
