import os

from hypothesis import settings

pytest_plugins = ["medgov_shared.testing.fixtures"]

# Property tests check behaviour, not speed: a per-example deadline only makes
# them fail on a loaded machine (CI runs Kafka and PostgreSQL on the same 2 cores).
settings.register_profile("medgov", deadline=None)
settings.load_profile("medgov")

# Services record spans without an OTLP endpoint only when a sampler is named.
# The tracing tests attach an in-memory exporter to the provider that the first
# service of this process installs, so its spans must be recorded.
os.environ.setdefault("OTEL_TRACES_SAMPLER", "parentbased_always_on")
