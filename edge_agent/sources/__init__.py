"""Sources: one module per kind, each turning a camera, folder or sensor feed into Items."""
