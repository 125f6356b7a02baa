"""HTTP side: the REST API, the server-rendered dashboard and the operations endpoints."""
