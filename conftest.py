pytest_plugins = ["medgov_shared.testing.fixtures"]
