"""Emulated Finance and Operations OData service, served at `/data/`."""
