"""Placement: where tasks go, and the cluster query language that selects instances."""
