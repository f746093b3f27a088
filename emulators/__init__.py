"""Local HTTPS emulators of Dataverse (Dynamics 365 Sales), F&O OData and Entra ID.

Development and test infrastructure only: the product package (`prospect_to_cash`) never
imports anything from here, it only talks HTTP to it.
"""
