"""`up` and `down`: getting a machine, the image, the secrets and the container onto it.

Floors, top to bottom: `dispatch` (up/down for any preset) -> `single` / `cluster_up` /
`cluster_down` / `publish` -> `launch` (Lambda instances) and `steps` (the shared steps on a
host) -> `reporter` (what the user is told). Nothing here is imported by the modules below.
"""
