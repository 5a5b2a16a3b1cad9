"""Settings come from PARLEY_* variables, each one listed in deploy/env.example."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from service.settings import Settings, SettingsError, env_name

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "env.example"


def listed_variables() -> set[str]:
    return set(re.findall(r"^#?\s*(PARLEY_[A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    settings = {env_name(field.name) for field in msgspec.structs.fields(Settings)}
    assert settings - listed_variables() == set(), "settings missing from deploy/env.example"
    assert listed_variables() - settings == set(), "deploy/env.example names variables no setting reads"


def test_every_field_is_read_from_its_variable() -> None:
    settings = Settings.from_env({"PARLEY_PORT": "9001", "PARLEY_PUBLIC_READ": "yes", "PARLEY_WEBHOOK_TIMEOUT": "2.5", "PARLEY_SIGNING_KEY": "abc"})
    assert (settings.port, settings.public_read, settings.webhook_timeout, settings.signing_key) == (9001, True, 2.5, "abc")
    assert Settings.from_env({"PARLEY_RUN_WEBHOOKS": "0"}).run_webhooks is False


def test_empty_variables_keep_the_default_and_overrides_win() -> None:
    assert Settings.from_env({"PARLEY_PORT": ""}).port == Settings().port
    assert Settings.from_env({"PARLEY_PORT": "9001"}, port=9002).port == 9002


@pytest.mark.parametrize(("variable", "value"), [("PARLEY_PORT", "eighty"), ("PARLEY_LOG_FORMAT", "xml"), ("PARLEY_POOL_SIZE", "1.5")])
def test_a_variable_that_does_not_parse_names_itself(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_settings_written_to_the_environment_read_back_the_same() -> None:
    """How `parley serve` hands its CLI options to every worker process."""
    settings = Settings.from_env({"PARLEY_PUBLIC_READ": "1", "PARLEY_SIGNING_KEY": "abc"}, port=9002, workers=3, database_url="postgresql://db/p")
    assert Settings.from_env(settings.to_env()) == settings
    assert settings.to_env()["PARLEY_WORKERS"] == "3"


@pytest.mark.parametrize(("variable", "value"), [("PARLEY_WORKERS", "0"), ("PARLEY_POOL_SIZE", "0"), ("PARLEY_POOL_MAX_OVERFLOW", "-1"), ("PARLEY_SHUTDOWN_GRACE", "0")])
def test_counts_out_of_range_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})
