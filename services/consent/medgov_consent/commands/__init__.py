"""The consent service's reactions to commands and events, one unit of work each."""
