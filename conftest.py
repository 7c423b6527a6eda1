from hypothesis import settings

pytest_plugins = ["medgov_shared.testing.fixtures"]

# Property tests check behaviour, not speed: a per-example deadline only makes
# them fail on a loaded machine (CI runs Kafka and PostgreSQL on the same 2 cores).
settings.register_profile("medgov", deadline=None)
settings.load_profile("medgov")
