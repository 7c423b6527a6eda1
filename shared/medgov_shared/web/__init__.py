"""HTTP plumbing shared by the services: health probes, metrics, bearer-token roles, error mapping."""
