"""Avatar assets: the bundle manifest, the glTF loader and the sample-avatar generator."""
