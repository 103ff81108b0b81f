"""Settings: shell wins over the env file, missing values are named, secrets hidden."""

from pathlib import Path

import pytest

from crypto_etl.config import (
    MetabaseSettings,
    ReaderSettings,
    Secret,
    load_settings,
    read_env_file,
)
from crypto_etl.errors import ConfigError

FULL = {
    "WAREHOUSE_HOST": "db.internal",
    "WAREHOUSE_PORT": "5433",
    "WAREHOUSE_DB": "coincap",
    "WAREHOUSE_USER": "etl",
    "WAREHOUSE_PASSWORD": "pw-from-shell",
}
READER = {
    "WAREHOUSE_READER_USER": "coincap_reader",
    "WAREHOUSE_READER_PASSWORD": "reader-pw",
}
METABASE = {
    "METABASE_URL": "http://metabase:3000/",
    "METABASE_ADMIN_EMAIL": "admin@example.com",
    "METABASE_ADMIN_PASSWORD": "mb-admin-pw",
}
PROJECT_ENV_FILE = Path(__file__).resolve().parents[2] / "env"


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
    values = read_env_file(PROJECT_ENV_FILE)
    for name in ("WAREHOUSE_HOST", "WAREHOUSE_PORT", "WAREHOUSE_DB", "WAREHOUSE_USER"):
        assert values[name]
    assert not values.get("COINCAP_API_KEY")


def test_the_reader_login_and_metabase_are_read_as_whole_groups(tmp_path):
    settings = load_settings({**FULL, **READER, **METABASE}, tmp_path / "none")
    assert settings.reader == ReaderSettings("coincap_reader", Secret("reader-pw"))
    assert settings.metabase == MetabaseSettings(
        url="http://metabase:3000",
        admin_email="admin@example.com",
        admin_password=Secret("mb-admin-pw"),
        warehouse_host="warehouse",
        warehouse_port=5432,
    )
    assert settings.require_reader("the dashboard") is settings.reader
    assert settings.require_metabase() is settings.metabase
    assert set(settings.secrets()) == {"pw-from-shell", "reader-pw", "mb-admin-pw"}
    assert "reader-pw" not in repr(settings) and "mb-admin-pw" not in repr(settings)


def test_metabases_own_view_of_the_warehouse_can_be_set(tmp_path):
    environ = {
        **FULL,
        **METABASE,
        "METABASE_WAREHOUSE_HOST": "db.internal",
        "METABASE_WAREHOUSE_PORT": "6543",
    }
    metabase = load_settings(environ, tmp_path / "none").require_metabase()
    assert (metabase.warehouse_host, metabase.warehouse_port) == ("db.internal", 6543)


def test_no_reader_or_metabase_variables_leave_those_groups_unset(tmp_path):
    settings = load_settings(FULL, tmp_path / "none")
    assert settings.reader is None and settings.metabase is None
    assert settings.secrets() == ["pw-from-shell"]


def test_a_reader_user_without_its_password_names_the_password_and_where(tmp_path):
    env_file = write_env(tmp_path, "WAREHOUSE_READER_USER=coincap_reader\n")
    with pytest.raises(ConfigError) as info:
        load_settings(FULL, env_file)
    message = str(info.value)
    assert message.startswith("missing setting WAREHOUSE_READER_PASSWORD: ")
    assert "only WAREHOUSE_READER_USER is set" in message
    assert f"looked in the environment and {env_file.resolve()}" in message


def test_a_reader_password_without_its_user_names_the_user(tmp_path):
    environ = {**FULL, "WAREHOUSE_READER_PASSWORD": "reader-pw"}
    with pytest.raises(ConfigError) as info:
        load_settings(environ, tmp_path / "none")
    message = str(info.value)
    assert message.startswith("missing setting WAREHOUSE_READER_USER: ")
    assert "reader-pw" not in message


def test_part_of_the_metabase_group_names_every_missing_part(tmp_path):
    environ = {**FULL, "METABASE_URL": "http://127.0.0.1:3000"}
    with pytest.raises(ConfigError) as info:
        load_settings(environ, tmp_path / "none")
    message = str(info.value)
    assert message.startswith(
        "missing settings METABASE_ADMIN_EMAIL, METABASE_ADMIN_PASSWORD: "
    )
    assert "only METABASE_URL is set" in message
    assert str((tmp_path / "none").resolve()) in message


def test_metabases_warehouse_address_alone_is_part_of_a_group(tmp_path):
    environ = {**FULL, "METABASE_WAREHOUSE_HOST": "warehouse"}
    with pytest.raises(ConfigError) as info:
        load_settings(environ, tmp_path / "none")
    assert str(info.value).startswith(
        "missing settings METABASE_URL, METABASE_ADMIN_EMAIL, METABASE_ADMIN_PASSWORD"
    )


def test_a_group_completed_by_the_env_file_is_whole(tmp_path):
    env_file = write_env(tmp_path, "WAREHOUSE_READER_PASSWORD=from-file\n")
    environ = {**FULL, "WAREHOUSE_READER_USER": "shell_reader"}
    reader = load_settings(environ, env_file).reader
    assert reader == ReaderSettings("shell_reader", Secret("from-file"))


def test_a_command_needing_an_unset_group_names_its_variables(tmp_path):
    settings = load_settings(FULL, tmp_path / "none")
    places = f"looked in the environment and {(tmp_path / 'none').resolve()}"
    with pytest.raises(ConfigError) as info:
        settings.require_reader("the dashboard")
    assert str(info.value) == (
        "the dashboard reads through the read-only role and needs "
        f"WAREHOUSE_READER_USER and WAREHOUSE_READER_PASSWORD set ({places}); "
        "`crypto-etl migrate` creates that role"
    )
    with pytest.raises(ConfigError) as info:
        settings.require_metabase()
    assert str(info.value) == (
        "provisioning Metabase needs METABASE_URL, METABASE_ADMIN_EMAIL and "
        f"METABASE_ADMIN_PASSWORD set ({places})"
    )


def test_bad_metabase_url_and_port_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="METABASE_URL must be an http"):
        load_settings(
            {**FULL, **METABASE, "METABASE_URL": "metabase:3000"}, tmp_path / "none"
        )
    with pytest.raises(ConfigError, match="METABASE_WAREHOUSE_PORT must be a port"):
        load_settings(
            {**FULL, **METABASE, "METABASE_WAREHOUSE_PORT": "99999"},
            tmp_path / "none",
        )


def test_the_projects_env_file_sets_the_reader_and_metabase_groups_whole():
    settings = load_settings({}, PROJECT_ENV_FILE)
    assert settings.reader is not None and settings.metabase is not None


def test_calls_in_flight_default_to_8_and_must_be_a_whole_number_up_to_64(tmp_path):
    no_file = tmp_path / "none"
    assert load_settings(FULL, no_file).max_in_flight == 8
    assert (
        load_settings({**FULL, "COINCAP_MAX_IN_FLIGHT": "2"}, no_file).max_in_flight
        == 2
    )
    for bad in ("0", "2.5", "many", "65"):
        with pytest.raises(ConfigError, match="COINCAP_MAX_IN_FLIGHT must be a whole"):
            load_settings({**FULL, "COINCAP_MAX_IN_FLIGHT": bad}, no_file)
