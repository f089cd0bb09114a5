"""Drives prometheus_client's Pushgateway functions against one or more
gateways, doing exactly the same calls on each, in order.

Usage: pushgateway_client.py HOST:PORT [HOST:PORT ...]
Exits non-zero if any call fails.
"""
import sys

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    delete_from_gateway,
    push_to_gateway,
    pushadd_to_gateway,
)

gateways = sys.argv[1:]
assert gateways, __doc__

batch = CollectorRegistry()
jobs = Counter("jobs_processed", "Jobs processed.", ["queue"], registry=batch)
jobs.labels("a").inc(3)
jobs.labels("b").inc(5)
Gauge("last_success_unixtime", "Last success.", registry=batch).set(1234567890)
h = Histogram("batch_seconds", "Batch duration.", buckets=[0.1, 1, 10], registry=batch)
h.observe(0.5)
h.observe(3)
Summary("request_size_bytes", "Request sizes.", registry=batch).observe(100)

extra = CollectorRegistry()
Gauge("extra_value", "Added by a POST.", registry=extra).set(7)

other = CollectorRegistry()
Gauge("deleted_soon", "Pushed, then deleted.", registry=other).set(1)

tricky = CollectorRegistry()
Gauge("tricky_value", "Grouping values that need escaping.", registry=tricky).set(2)


def each(call):
    for gw in gateways:
        call(gw)


each(lambda gw: push_to_gateway(gw, job="batch", registry=batch))
each(lambda gw: pushadd_to_gateway(gw, job="batch", registry=extra))
each(
    lambda gw: push_to_gateway(
        gw,
        job="batch",
        registry=batch,
        grouping_key={"instance": "host1", "path": "/var/tmp"},
        compression="gzip",
    )
)
each(lambda gw: pushadd_to_gateway(gw, job="gz", registry=extra, compression="gzip"))
each(lambda gw: push_to_gateway(gw, job="other", registry=other))
each(lambda gw: delete_from_gateway(gw, job="other"))
each(lambda gw: push_to_gateway(gw, job="tricky", registry=tricky, grouping_key={"team": "a b", "empty": ""}))
print("ok")
