"""Connections from AIRFLOW_CONN_* JSON, their validation, and the provider registration."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from prospect_to_cash.get_provider_info import get_provider_info
from prospect_to_cash.hooks import DataverseHook, FinanceOperationsHook
from prospect_to_cash.hooks._connection import config_from_connection
from prospect_to_cash.hooks.errors import DynamicsConnectionConfigError

if TYPE_CHECKING:
    from pathlib import Path

SECRET = "s3cr3t~value-from-key-vault"


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


class TestFromEnvironment:
    def test_dataverse_json_connection(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        ca = tmp_path / "ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n")
        set_conn(
            monkeypatch,
            "dv_test",
            conn_type="dynamics_dataverse",
            host="https://org.crm4.dynamics.com/",
            login="11111111-2222-3333-4444-555555555555",
            password=SECRET,
            extra={"tenant_id": "tenant-guid", "ca_bundle": str(ca)},
        )
        hook = DataverseHook(dataverse_conn_id="dv_test")
        config = hook.config
        assert config.environment_url == "https://org.crm4.dynamics.com"
        assert config.authority == "https://login.microsoftonline.com/tenant-guid"
        assert config.client_id == "11111111-2222-3333-4444-555555555555"
        assert config.client_secret == SECRET
        assert config.ca_bundle == str(ca)
        assert hook.service_root == "https://org.crm4.dynamics.com/api/data/v9.2/"
        assert SECRET not in repr(config)

    def test_fno_connection_with_sovereign_authority_and_company(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        set_conn(
            monkeypatch,
            "fno_test",
            conn_type="dynamics_fno",
            host="https://contoso.operations.dynamics.us/data/",
            login="client",
            password=SECRET,
            extra={
                "tenant_id": "t",
                "authority_host": "https://login.microsoftonline.us/",
                "default_company": "usmf",
            },
        )
        hook = FinanceOperationsHook(fno_conn_id="fno_test")
        assert hook.config.environment_url == "https://contoso.operations.dynamics.us"
        assert hook.config.authority == "https://login.microsoftonline.us/t"
        assert hook.config.default_company == "usmf"
        assert hook.service_root == "https://contoso.operations.dynamics.us/data/"

    def test_prefixed_extras_written_by_older_forms(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_conn(
            monkeypatch,
            "fno_old",
            conn_type="dynamics_fno",
            host="contoso.operations.dynamics.com",
            login="client",
            password=SECRET,
            extra={"extra__dynamics_fno__tenant_id": "t", "extra__dynamics_fno__default_company": "demf"},
        )
        config = FinanceOperationsHook(fno_conn_id="fno_old").config
        assert config.environment_url == "https://contoso.operations.dynamics.com"
        assert config.default_company == "demf"

    def test_emulator_style_url_with_port(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_conn(
            monkeypatch,
            "dv_local",
            conn_type="dynamics_dataverse",
            host="https://localhost:8441/api/data/v9.2/",
            login="c",
            password=SECRET,
            extra={"tenant_id": "t", "authority_host": "https://localhost:8440"},
        )
        config = DataverseHook(dataverse_conn_id="dv_local").config
        assert config.environment_url == "https://localhost:8441"
        assert config.authority == "https://localhost:8440/t"

    def test_the_secret_is_masked_once_read(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import uuid

        from airflow.sdk.log import redact

        secret = f"never-seen-before-{uuid.uuid4().hex}"
        assert redact(f"x {secret} y") == f"x {secret} y"
        set_conn(
            monkeypatch,
            "dv_mask",
            conn_type="dynamics_dataverse",
            host="https://org.crm.dynamics.com",
            login="c",
            password=secret,
            extra={"tenant_id": "t"},
        )
        DataverseHook(dataverse_conn_id="dv_mask").config  # noqa: B018 - reading is what masks
        assert redact(f"x {secret} y") == "x *** y"


class FakeConnection:
    def __init__(self, **fields: Any) -> None:
        self.conn_id = "c"
        self.host = fields.get("host", "https://org.crm.dynamics.com")
        self.login = fields.get("login", "client")
        self.password = fields.get("password", SECRET)
        self.port = fields.get("port")
        self.schema = fields.get("schema")
        self.extra_dejson = fields.get("extra", {"tenant_id": "t"})


class TestValidation:
    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"host": None}, "host"),
            ({"login": ""}, "login"),
            ({"password": None}, "password"),
            ({"extra": {}}, "tenant_id"),
            ({"host": "http://org.crm.dynamics.com"}, "https"),
            ({"host": "https://org.crm.dynamics.com/api/data/v9.2/accounts"}, "bare environment"),
            ({"extra": {"tenant_id": "t", "authority_host": "http://login"}}, "authority_host"),
            ({"extra": {"tenant_id": "t", "ca_bundle": "/nonexistent/ca.pem"}}, "not a file"),
        ],
    )
    def test_readable_errors(self, fields: dict[str, Any], message: str) -> None:
        with pytest.raises(DynamicsConnectionConfigError, match=message):
            config_from_connection(FakeConnection(**fields), "dynamics_dataverse")

    def test_all_missing_fields_are_named_at_once(self) -> None:
        with pytest.raises(DynamicsConnectionConfigError) as raised:
            config_from_connection(FakeConnection(host=None, password=None, extra={}), "dynamics_dataverse")
        text = str(raised.value)
        assert "host" in text
        assert "password" in text
        assert "tenant_id" in text
        assert SECRET not in text

    def test_port_is_kept(self) -> None:
        config = config_from_connection(FakeConnection(host="localhost", port=8441), "dynamics_dataverse")
        assert config.environment_url == "https://localhost:8441"


class TestProviderRegistration:
    def test_provider_info_declares_both_connection_types(self) -> None:
        info = get_provider_info()
        types = {entry["connection-type"]: entry for entry in info["connection-types"]}
        assert set(types) == {"dynamics_dataverse", "dynamics_fno"}
        assert (
            types["dynamics_dataverse"]["hook-class-name"] == "prospect_to_cash.hooks.dataverse.DataverseHook"
        )
        assert set(types["dynamics_dataverse"]["conn-fields"]) == {"tenant_id", "authority_host", "ca_bundle"}
        assert set(types["dynamics_fno"]["conn-fields"]) == {
            "tenant_id",
            "authority_host",
            "ca_bundle",
            "default_company",
        }
        for hook in (DataverseHook, FinanceOperationsHook):
            entry = types[hook.conn_type]
            assert entry["hook-name"] == hook.hook_name
            assert entry["ui-field-behaviour"]["relabeling"]["password"] == "Client secret"

    def test_providers_manager_serves_the_forms(self) -> None:
        from airflow.providers_manager import ProvidersManager
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        manager = ProvidersManager()
        runtime = ProvidersManagerTaskRuntime()
        assert "airflow-provider-prospect-to-cash" in manager.providers
        for hook in (DataverseHook, FinanceOperationsHook):
            info = runtime.hooks[hook.conn_type]
            assert info is not None
            assert info.hook_class_name == f"{hook.__module__}.{hook.__name__}"
            assert info.connection_id_attribute_name == hook.conn_name_attr
            assert info.connection_testable is True
            behaviour = manager._field_behaviours_from_metadata[hook.conn_type]
            assert behaviour["relabeling"]["host"] == "Environment URL"
            assert "extra" in behaviour["hidden_fields"]
        widgets = manager._connection_form_widgets_from_metadata
        assert widgets["extra__dynamics_fno__default_company"].field["schema"]["title"] == "Default company"
        assert widgets["extra__dynamics_dataverse__tenant_id"].field_name == "tenant_id"
        assert "extra__dynamics_dataverse__default_company" not in widgets

    def test_connection_ui_metadata_endpoint_lists_the_fields(self) -> None:
        from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

        meta = {m.connection_type: m for m in HookMetaService.hook_meta_data()}
        fno = meta["dynamics_fno"]
        assert fno.hook_name == "Dynamics 365 Finance and Operations"
        assert set(fno.extra_fields or {}) == {"tenant_id", "authority_host", "ca_bundle", "default_company"}
        assert fno.standard_fields is not None
        assert fno.standard_fields.port is not None
        assert fno.standard_fields.port.hidden is True

    def test_connection_form_marks_tenant_required_and_shows_every_extra_fields_example(self) -> None:
        """What Airflow 3's form honours: an extra field's hint is its schema's ``examples`` (the
        ``ui-field-behaviour`` placeholders reach the standard fields only), and a field whose type
        lacks "null" carries the required star."""
        from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

        meta = {m.connection_type: m for m in HookMetaService.hook_meta_data()}
        expected_examples = {
            "tenant_id": ["00000000-0000-0000-0000-000000000000"],
            "authority_host": ["https://login.microsoftonline.com"],
            "ca_bundle": ["/etc/ssl/certs/company-ca.pem"],
        }
        for conn_type, examples in (
            ("dynamics_dataverse", expected_examples),
            ("dynamics_fno", {**expected_examples, "default_company": ["usmf"]}),
        ):
            schemas = {name: field["schema"] for name, field in (meta[conn_type].extra_fields or {}).items()}
            assert {name: schema["examples"] for name, schema in schemas.items()} == examples
            required = {name for name, schema in schemas.items() if "null" not in schema["type"]}
            assert required == {"tenant_id"}, conn_type
            assert schemas["tenant_id"]["type"] == "string"
