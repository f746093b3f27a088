"""Emulated Dataverse Web API (Dynamics 365 Sales), served at `/api/data/v9.2/`."""
