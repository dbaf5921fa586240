"""Recording that scales out: the runs split between replicas by shard (``crd/shards.py``), each
shard held by one replica with a Lease (``ownership``), and kopf's watch filtered by the API server to
the shards this replica holds (``watch``)."""
