"""Simulation: the numpy reference interpreter that defines the integer model, and
the backends that run built accelerators cycle-accurately against it."""
