"""The catalog's domain: reading dataset files, PIPA scanning, scoring and the dataset lifecycle.

Nothing here imports a database driver, Kafka or an HTTP framework. Functions take
paths or bytes and return frozen values that map onto the event contracts.
"""
