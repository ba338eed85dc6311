"""Reconcilers: pure functions from a snapshot of the cluster and the time to a plan of
what to start, stop and record (``services.reconcile``); the loop does the I/O."""
