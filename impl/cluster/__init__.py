"""Clustering mqttref nodes on NATS JetStream (``mqttref broker --cluster``, docs/cluster.md).

Only this package imports ``nats``: the single-node broker imports it lazily, when
the configuration names a cluster.
"""
