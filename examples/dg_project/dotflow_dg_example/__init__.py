"""A dg project declaring two dotflow workflows in YAML (``defs/*/defs.yaml``)."""
