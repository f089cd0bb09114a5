# Wire schema of exporter-proxy's Cap'n Proto receivers.
#
# Compatibility: the file id, the struct name and the ordinals of
# `InboundMetrics` are those of the original exporter-proxy, so clients
# generated from the original schema keep working byte for byte. New fields
# may only be added with new ordinals.
@0xfb4ded7f739d5651;

struct InboundMetrics {
  # Name of the application; the key under which the proxy stores the metrics.
  appName @0 :Text;
  # Prometheus text exposition (format 0.0.4) for that application.
  # A push replaces everything the application pushed before.
  data @1 :Text;
  # How long the metrics stay without a new push: a duration such as
  # "30s", "5m" or "1h30m", or "never". Empty (or absent, as in clients
  # built from the original schema) means the listener's default.
  ttl @2 :Text;
}

# Request/response interface served on the optional RPC listener
# (`[receiver.rpc]`): unlike the plain stream framing, every push is
# answered with whether it was accepted and, if not, why.
interface MetricsReceiver {
  push @0 (metrics :InboundMetrics) -> (accepted :Bool, error :Text);
}
