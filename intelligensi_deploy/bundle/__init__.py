"""The bundled server image: built on the host from the server as it ships with this CLI."""
