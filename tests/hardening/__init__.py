"""Hardening: faults, load and hostile input across the whole system (issue 8)."""
