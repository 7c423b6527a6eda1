"""Event contracts: the CloudEvents envelope, payload models and the topic registry."""
