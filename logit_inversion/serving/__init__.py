"""A trained inverter as a SavedModel: `export` (signatures, versioned atomic export),
`loading` (numpy-in, numpy-out wrapper of an export) and `client` (TF Serving requests)."""
