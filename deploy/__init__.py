"""Deployment beyond one machine: the image, the Helm values, the manifests; their checks."""
