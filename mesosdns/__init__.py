"""mesosdns: a Mesos-DNS compatible service-discovery server."""

__version__ = "0.1.0"
