"""Settings: shell wins over the env file, missing values are named, secrets hidden."""

from pathlib import Path

import pytest

from crypto_etl.config import Secret, load_settings, read_env_file
from crypto_etl.errors import ConfigError

FULL = {
    "WAREHOUSE_HOST": "db.internal",
    "WAREHOUSE_PORT": "5433",
    "WAREHOUSE_DB": "coincap",
    "WAREHOUSE_USER": "etl",
    "WAREHOUSE_PASSWORD": "pw-from-shell",
}


def write_env(tmp_path, text):
    path = tmp_path / "env"
    path.write_text(text)
    return path


def test_shell_values_win_over_the_env_file(tmp_path):
    env_file = write_env(tmp_path, "WAREHOUSE_HOST=127.0.0.1\nWAREHOUSE_PORT=5432\n")
    settings = load_settings(FULL, env_file)
    assert settings.warehouse.host == "db.internal"
    assert settings.warehouse.port == 5433


def test_env_file_fills_what_the_shell_leaves_out(tmp_path):
    env_file = write_env(
        tmp_path, "# defaults\nexport WAREHOUSE_DB='from_file'\nCOINCAP_API_KEY=\"k\"\n"
    )
    environ = {k: v for k, v in FULL.items() if k != "WAREHOUSE_DB"}
    settings = load_settings(environ, env_file)
    assert settings.warehouse.dbname == "from_file"
    assert settings.api_key().reveal() == "k"


def test_missing_values_are_all_named_with_where_we_looked(tmp_path):
    env_file = write_env(tmp_path, "WAREHOUSE_HOST=127.0.0.1\n")
    with pytest.raises(ConfigError) as info:
        load_settings({"WAREHOUSE_DB": ""}, env_file)
    message = str(info.value)
    assert "WAREHOUSE_PORT, WAREHOUSE_DB, WAREHOUSE_USER, WAREHOUSE_PASSWORD" in message
    assert str(env_file.resolve()) in message


def test_missing_api_key_is_an_error_naming_it(tmp_path):
    settings = load_settings(FULL, tmp_path / "none")
    with pytest.raises(ConfigError, match="COINCAP_API_KEY is not set"):
        settings.api_key()


def test_bad_port_and_bad_base_url_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="WAREHOUSE_PORT must be a port number"):
        load_settings({**FULL, "WAREHOUSE_PORT": "54x"}, tmp_path / "none")
    with pytest.raises(ConfigError, match="COINCAP_BASE_URL must be an http"):
        load_settings(
            {**FULL, "COINCAP_BASE_URL": "rest.coincap.io"}, tmp_path / "none"
        )


def test_default_base_url_is_the_real_v3_api(tmp_path):
    settings = load_settings(FULL, tmp_path / "none")
    assert settings.coincap_base_url == "https://rest.coincap.io/v3"


def test_secrets_never_show_in_repr():
    settings = load_settings(
        {**FULL, "COINCAP_API_KEY": "sk-very-secret"}, Path("/nope")
    )
    assert "sk-very-secret" not in repr(settings)
    assert "pw-from-shell" not in repr(settings)
    assert str(Secret("x")) == "Secret('********')"
    assert set(settings.secrets()) == {"sk-very-secret", "pw-from-shell"}


def test_a_malformed_env_file_line_is_reported_with_its_number(tmp_path):
    env_file = write_env(tmp_path, "A=1\nthis is not a setting\n")
    with pytest.raises(ConfigError, match=r"env:2: expected KEY=VALUE"):
        read_env_file(env_file)


def test_the_projects_env_file_has_every_warehouse_default_and_no_api_key():
    values = read_env_file(Path(__file__).resolve().parents[2] / "env")
    for name in ("WAREHOUSE_HOST", "WAREHOUSE_PORT", "WAREHOUSE_DB", "WAREHOUSE_USER"):
        assert values[name]
    assert not values.get("COINCAP_API_KEY")
