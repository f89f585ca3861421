"""Settings: flags, then the environment, then the TOML file, then the defaults; wrong values
refused one line each, before any work starts."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from flows import cli
from flows.settings import SETTINGS, Settings, SettingsError, configuration_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _from_file(parsed: dict) -> dict:
    """Settings.resolve's arguments for a parsed example file, through a file of its own."""
    import tempfile

    path = Path(tempfile.mkdtemp()) / "agentkpi.toml"
    lines = []
    for section, values in parsed.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            text = str(value).lower() if isinstance(value, bool) else repr(value)
            lines.append(f"{key} = {text}".replace("'", '"'))
    path.write_text("\n".join(lines) + "\n")
    return {"config": path}


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agentkpi.toml"
    path.write_text(text)
    return path


def test_flag_then_environment_then_file_then_default(tmp_path: Path) -> None:
    config = _file(
        tmp_path,
        '[sources]\nlogs_dir = "/from/file"\ndb_url = "sqlite:////file.db"\n'
        "[kpi]\nsuccess_red = 0.7\nsuccess_green = 0.9\n[run]\nlookback_s = 60\n",
    )
    env = {"AGENTKPI_SUCCESS_RED": "0.75", "AGENTKPI_DB_URL": "sqlite:////env.db"}
    settings = Settings.resolve(db_url="sqlite:////flag.db", config=config, env=env)
    assert settings.db_url == "sqlite:////flag.db"  # flag over environment and file
    assert settings.kpi.success_red == 0.75  # environment over file
    assert settings.kpi.success_green == 0.9  # file over default
    assert settings.logs_dir == Path("/from/file")
    assert settings.lookback_s == 60.0
    assert settings.kpi.response_red_s == 5.0  # default
    origins = {name: origin for name, _, origin in settings.described()}
    assert origins["sources.db_url"] == "flag"
    assert origins["kpi.success_red"] == "environment AGENTKPI_SUCCESS_RED"
    assert origins["kpi.success_green"] == "file"
    assert origins["kpi.response_red_s"] == "default"


def test_the_file_comes_from_agentkpi_config(tmp_path: Path) -> None:
    config = _file(tmp_path, "[run]\nextract_retries = 7\n")
    settings = Settings.resolve(env={"AGENTKPI_CONFIG": str(config)})
    assert settings.extract_retries == 7


@pytest.mark.parametrize(
    ("text", "env", "problem"),
    [
        ('[kpi]\nsuccess_red = "low"\n', {}, "kpi.success_red (file): 'low' is not a number"),
        ("", {"AGENTKPI_EXTRACT_RETRIES": "2.5"}, "run.extract_retries (environment"),
        ("[kpi]\nsucess_red = 0.7\n", {}, "unknown setting [kpi] sucess_red"),
        ("[kpi]\nsuccess_red = 0.96\n", {}, "the warning range may not be looser"),
        ("", {"AGENTKPI_RESPONSE_GREEN_S": "6"}, "need 0 <= green <= red"),
        ("[run]\nlookback_s = -1\n", {}, "run.lookback_s -1.0: may not be negative"),
        ("[kpi\n", {}, "configuration file"),
    ],
)
def test_wrong_settings_are_refused_one_line_each(
    tmp_path: Path, text: str, env: dict[str, str], problem: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.resolve(config=_file(tmp_path, text), env=env)
    assert problem in str(raised.value)


def test_every_problem_is_its_own_line(tmp_path: Path) -> None:
    config = _file(tmp_path, '[kpi]\nsuccess_red = "x"\nresponse_red_s = "y"\n')
    with pytest.raises(SettingsError) as raised:
        Settings.resolve(config=config, env={})
    assert len(str(raised.value).splitlines()) == 2


def test_run_refuses_unreadable_sources_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse = tmp_path / "w.duckdb"
    code = cli.main(
        ["run", "--engine", "plain", "--db-url", "mysql://x/y", "--logs-dir",
         str(tmp_path / "none"), "--warehouse", str(warehouse)]
    )  # fmt: skip
    assert code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "agentkpi: db_url 'mysql://x/y': not a sqlite:/// or postgresql:// URL",
        f"agentkpi: logs_dir: no directory at {tmp_path / 'none'}",
    ]
    assert not warehouse.exists() and not list(tmp_path.glob("*.duckdb"))


def test_docs_configuration_md_lists_every_setting() -> None:
    text = DOCS.read_text()
    assert text == configuration_markdown(), "out of date: regenerate docs/configuration.md"
    assert all(f"`{s.env}`" in text for s in SETTINGS)
    example = text.split("```toml\n")[1].split("```")[0]
    parsed = tomllib.loads(example)
    assert parsed["delivery"]["smtp_starttls"] is True
    # The example is a valid file that sets every default.
    assert Settings.resolve(env={}) == Settings.resolve(env={}, **_from_file(parsed))


def test_channels_come_from_the_settings_and_secrets_from_the_environment(tmp_path: Path) -> None:
    from flows.deliver import Channels

    config = _file(
        tmp_path,
        '[delivery]\nsmtp_host = "mail.example.org"\nsmtp_starttls = false\n'
        'mail_to = "a@example.org, b@example.org"\nsmtp_password = "in-a-file"\n',
    )
    with pytest.raises(SettingsError, match=r"unknown setting \[delivery\] smtp_password"):
        Settings.resolve(config=config, env={})
    config.write_text(config.read_text().replace('smtp_password = "in-a-file"\n', ""))
    env = {"AGENTKPI_SMTP_PASSWORD": "from-env", "AGENTKPI_SMTP_PORT": "2525"}
    settings = Settings.resolve(config=config, env=env)
    channels = Channels.from_settings(settings, env)
    assert channels.smtp_host == "mail.example.org" and channels.smtp_port == 2525
    assert channels.smtp_starttls is False
    assert channels.mail_to == ("a@example.org", "b@example.org")
    assert channels.smtp_password == "from-env"
    assert "from-env" not in repr(channels) and "from-env" not in str(settings.described())


def test_a_warehouse_given_as_a_symlink_is_the_file_it_points_to(tmp_path: Path) -> None:
    # A new file is swapped in for the warehouse: in for the file the link names, so that
    # the link (and a BI tool opening either path) sees every run.
    (tmp_path / "real").mkdir()
    link = tmp_path / "warehouse.duckdb"
    link.symlink_to(tmp_path / "real" / "warehouse.duckdb")
    settings = Settings.resolve(warehouse=link)
    assert settings.warehouse == tmp_path / "real" / "warehouse.duckdb"
