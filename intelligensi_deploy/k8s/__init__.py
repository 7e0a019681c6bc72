"""`fluxdeploy k8s`: the server as Kubernetes objects, rendered from the same preset.

Pure: a preset in, plain dicts out (`render.py`); only `render.write_tree` and the command
touch files. Nothing here talks to a cluster: the manifests are validated offline in tests
(kubernetes-validate, jsonschema on KubeRay's CRD), and applied by the user with kubectl.
"""
