"""Adapters everything may use: the model seam, the offline model, queues, cache, health.

Imports only the wings below it: db and core.
"""
