"""kopf handlers, custom-resource spec parsing, Job manifests and status conditions."""
