"""The consent domain: FHIR Consent reading, consent evaluation, revocation fan-out and exclusions."""
