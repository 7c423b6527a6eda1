"""The governance console: one web page over the four services' APIs, Korean first."""
