"""Provider metadata read by Airflow's ProvidersManager through the entry point.

Airflow 3.2+ reads connection form fields declaratively from here (``conn-fields`` and
``ui-field-behaviour``) without importing the hooks; the hook-level
``get_connection_form_widgets``/``get_ui_field_behaviour`` methods are deprecated there
and need Flask-AppBuilder/WTForms, which Airflow 3 no longer ships.
"""

from __future__ import annotations

from typing import Any

_STRING = {"type": ["string", "null"]}
#: Airflow 3's form marks a field whose schema type lacks "null" as required.
_REQUIRED_STRING = {"type": "string", "minLength": 1}

#: Example values of the extra fields. Airflow 3's UI shows ``ui-field-behaviour`` placeholders
#: for the standard fields only; an extra field offers its schema's ``examples`` as a pick list
#: under "Start typing to see options" (seen in Airflow 3.3's form by the UI tour), so each value
#: is declared once here and used for both.
_EXAMPLES = {
    "tenant_id": "00000000-0000-0000-0000-000000000000",
    "authority_host": "https://login.microsoftonline.com",
    "ca_bundle": "/etc/ssl/certs/company-ca.pem",
    "default_company": "usmf",
}


def _field(label: str, description: str, schema: dict[str, Any], name: str) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {**schema, "examples": [_EXAMPLES[name]]}}


def _common_fields() -> dict[str, Any]:
    return {
        "tenant_id": _field(
            "Tenant ID",
            "Entra ID tenant (directory) id of the app registration (required).",
            _REQUIRED_STRING,
            "tenant_id",
        ),
        "authority_host": _field(
            "Authority host",
            "Entra ID authority host; change it for sovereign clouds "
            "(e.g. https://login.microsoftonline.us).",
            {**_STRING, "default": "https://login.microsoftonline.com"},
            "authority_host",
        ),
        "ca_bundle": _field(
            "CA bundle path",
            "Optional PEM file to trust instead of the system store (TLS stays verified).",
            _STRING,
            "ca_bundle",
        ),
    }


def _behaviour(host_label: str, host_placeholder: str, extra_fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "hidden-fields": ["schema", "port", "extra"],
        "relabeling": {"host": host_label, "login": "Client ID", "password": "Client secret"},
        "placeholders": {
            "host": host_placeholder,
            "login": "Application (client) id of the app registration",
            "password": "Client secret of the app registration",
            **{name: _EXAMPLES[name] for name in extra_fields},
        },
    }


PACKAGE = "airflow-provider-prospect-to-cash"
_INTEGRATION_DATAVERSE = "Microsoft Dynamics 365 Sales (Dataverse)"
_INTEGRATION_FNO = "Microsoft Dynamics 365 Finance and Operations"
#: The templates' own layer: mapping tasks, whole templates, the run order between DAGs.
_INTEGRATION_P2C = "Dynamics 365 Prospect to cash"


def _version() -> str:
    """The installed package's version: pyproject.toml is its one home."""
    from importlib.metadata import version

    return version(PACKAGE)


def get_provider_info() -> dict[str, Any]:
    """Describe this package to Airflow so its connection types reach the UI."""
    fno_fields = _common_fields()
    fno_fields["default_company"] = _field(
        "Default company",
        "Legal entity (dataAreaId) read when a task names none, e.g. usmf.",
        _STRING,
        "default_company",
    )
    dataverse_fields = _common_fields()
    return {
        "package-name": PACKAGE,
        "name": "Dynamics 365 Prospect to cash",
        "description": "Hooks, operators and DAGs that synchronize Dynamics 365 Sales (Dataverse) "
        "and Dynamics 365 Finance and Operations.",
        "versions": [_version()],
        "integrations": [
            {
                "integration-name": _INTEGRATION_DATAVERSE,
                "external-doc-url": "https://learn.microsoft.com/power-apps/developer/data-platform/webapi/overview",
                "tags": ["service"],
            },
            {
                "integration-name": _INTEGRATION_FNO,
                "external-doc-url": "https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/data-entities/odata",
                "tags": ["service"],
            },
            {
                "integration-name": _INTEGRATION_P2C,
                "external-doc-url": "https://learn.microsoft.com/dynamics365/fin-ops-core/dev-itpro/sales-marketing/prospect-to-cash",
                "tags": ["software"],
            },
        ],
        "hooks": [
            {
                "integration-name": _INTEGRATION_DATAVERSE,
                "python-modules": ["prospect_to_cash.hooks.dataverse"],
            },
            {
                "integration-name": _INTEGRATION_FNO,
                "python-modules": ["prospect_to_cash.hooks.fno"],
            },
        ],
        "operators": [
            *(
                {
                    "integration-name": integration,
                    "python-modules": [
                        "prospect_to_cash.operators.extract",
                        "prospect_to_cash.operators.load",
                    ],
                }
                for integration in (_INTEGRATION_DATAVERSE, _INTEGRATION_FNO)
            ),
            {
                "integration-name": _INTEGRATION_P2C,
                "python-modules": ["prospect_to_cash.operators.mapping", "prospect_to_cash.operators.sync"],
            },
        ],
        "sensors": [
            {"integration-name": _INTEGRATION_P2C, "python-modules": ["prospect_to_cash.sensors.run_order"]},
        ],
        "connection-types": [
            {
                "connection-type": "dynamics_dataverse",
                "hook-class-name": "prospect_to_cash.hooks.dataverse.DataverseHook",
                "hook-name": "Dynamics 365 Dataverse",
                "conn-fields": dataverse_fields,
                "ui-field-behaviour": _behaviour(
                    "Environment URL", "https://contoso.crm.dynamics.com", dataverse_fields
                ),
            },
            {
                "connection-type": "dynamics_fno",
                "hook-class-name": "prospect_to_cash.hooks.fno.FinanceOperationsHook",
                "hook-name": "Dynamics 365 Finance and Operations",
                "conn-fields": fno_fields,
                "ui-field-behaviour": _behaviour(
                    "Environment URL", "https://contoso.operations.dynamics.com", fno_fields
                ),
            },
        ],
    }
