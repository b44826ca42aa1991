"""The configuration: typed settings from TOML, one clear line for every mistake."""
import datetime as dt

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import load_settings
from tests.configs import DEFAULT_CONFIG, REPO, write_config


def test_the_shipped_default_is_maildir_in_and_out_with_nine_counties():
    s = load_settings(DEFAULT_CONFIG)
    assert s.mailbox.transport == "maildir" and s.smtp.transport == "maildir"
    assert [c.name for c in s.counties] == ["荷塘区", "芦淞区", "石峰区", "天元区", "渌口区",
                                            "醴陵市", "攸县", "茶陵县", "炎陵县"]
    assert s.campaign.submission_deadline == dt.date(2022, 7, 31)
    assert s.campaign.report_deadline == dt.date(2022, 9, 30)
    assert (s.campaign.candidates_min, s.campaign.candidates_max) == (1, 3)
    assert str(s.campaign.timezone) == "Asia/Shanghai"
    assert s.digest.at == dt.time(8, 30)


def test_the_163_example_reads_imap_and_smtp_over_ssl():
    s = load_settings(REPO / "config" / "intake.163.toml")
    assert (s.mailbox.host, s.mailbox.port, s.mailbox.security) == ("imap.163.com", 993, "ssl")
    assert (s.smtp.host, s.smtp.port, s.smtp.security) == ("smtp.163.com", 465, "ssl")
    assert s.mailbox.password_env == "INTAKE_IMAP_PASSWORD"


def test_sender_addresses_decide_the_county_whatever_their_case():
    s = load_settings(DEFAULT_CONFIG)
    assert s.county_of("HeTang@Example.CN") == "荷塘区"
    assert s.county_of("stranger@example.com") is None


@pytest.mark.parametrize("old, new, expected", [
    ('from_address = "zzdztxhrj@163.com"', "", "smtp.from_address is missing"),
    ("poll_seconds = 60", 'poll_seconds = "often"', "mailbox.poll_seconds must be a whole number"),
    ("submission_deadline = 2022-07-31", 'submission_deadline = "July"',
     "campaign.submission_deadline is the string 'July', not a date"),
    ("report_deadline = 2022-09-30", 'report_deadline = "2022-09-30"',
     "campaign.report_deadline is the string '2022-09-30', not a date: TOML dates take no quotes"),
    ("report_deadline = 2022-09-30", "report_deadline = 2022-09-30T18:00:00",
     "campaign.report_deadline must be a date like 2022-07-31"),
    ("poll_seconds = 60", "poll-seconds = 60", "mailbox.poll-seconds is not a known key; did you mean poll_seconds?"),
    ("deeds_max_chars = 600", "deeds_max_char = 600",
     "campaign.deeds_max_char is not a known key; did you mean deeds_max_chars?"),
    ("[digest]", "[digests]", "[digests] is not a known section; did you mean digest?"),
    ('name = "攸县"', 'name = "攸县"\nsender = ["a@b.cn"]', "counties[6].sender is not a known key; did you mean senders?"),
    ('senders = ["lusong@example.cn"]', 'senders = ["lusong@example.cn", "HeTang@example.cn"]',
     "the sender hetang@example.cn is listed under both 荷塘区 and 芦淞区"),
    ('timezone = "Asia/Shanghai"', 'timezone = "Mars/Olympus"', "campaign.timezone is not a known time zone"),
    ('transport = "maildir"', 'transport = "pigeon"', "mailbox.transport must be one of imap, maildir"),
    ("candidates_per_county = [1, 3]", "candidates_per_county = [3]", "campaign.candidates_per_county"),
    ('at = "08:30"', 'at = "half past eight"', "digest.at must be a time of day"),
    ("[digest]", "[digest\n", "not valid TOML"),
])
def test_a_bad_key_names_the_key_and_the_file(tmp_path, old, new, expected):
    path = write_config(tmp_path, mailbox={"transport": "maildir", "path": "inbox", "poll_seconds": 60},
                        replace={old: new})
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_a_misspelt_key_is_refused_not_left_at_its_default(tmp_path):
    # authserv_id is what keeps a forged Authentication-Results header from vouching for a county:
    # misspelt, it would silently trust any header.
    path = write_config(tmp_path, mailbox={"transport": "maildir", "path": "inbox", "authserv-id": "mx.163.com"})
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value) == f"{path}: mailbox.authserv-id is not a known key; did you mean authserv_id?"


def test_a_misspelling_is_named_even_when_a_required_key_is_then_missing(tmp_path):
    path = write_config(tmp_path, mailbox={"transport": "imap", "hots": "imap.163.com",
                                           "username": "u@163.com", "password_env": "PW"})
    with pytest.raises(ConfigError, match="mailbox.hots is not a known key; did you mean host"):
        load_settings(path)


def test_the_other_transports_keys_are_known_only_unused(tmp_path):
    path = write_config(tmp_path, mailbox={"transport": "maildir", "path": "inbox", "host": "imap.163.com"})
    assert load_settings(path).mailbox.transport == "maildir"


def test_relative_paths_are_taken_from_the_configuration_files_folder(tmp_path, monkeypatch):
    path = write_config(tmp_path, mailbox={"transport": "maildir", "path": "mail/inbox"},
                        replace={f'path = "{tmp_path}/intake.json"': 'path = "../var/intake.json"'})
    monkeypatch.chdir("/")
    s = load_settings(path)
    assert s.mailbox.path == tmp_path / "mail" / "inbox"
    assert s.store.path == tmp_path.parent / "var" / "intake.json"
    assert load_settings(DEFAULT_CONFIG).store.path == REPO / "var" / "intake.json"


def test_a_missing_file_is_one_line():
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings("/nonexistent/intake.toml")


def test_passwords_come_only_from_the_environment(tmp_path, monkeypatch):
    path = write_config(tmp_path, mailbox={
        "transport": "imap", "host": "127.0.0.1", "port": 993, "security": "ssl",
        "username": "u@example.cn", "password_env": "TEST_INTAKE_PW"})
    s = load_settings(path)
    monkeypatch.delenv("TEST_INTAKE_PW", raising=False)
    with pytest.raises(ConfigError, match="TEST_INTAKE_PW"):
        s.mailbox.password()
    monkeypatch.setenv("TEST_INTAKE_PW", "s3cret")
    assert s.mailbox.password() == "s3cret"
