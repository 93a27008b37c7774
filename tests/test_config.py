"""Profiles, the 0600 config file and the order in which an endpoint is chosen."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from aml_client import KeyCredential, TokenCredential, config
from aml_client.config import Profile, Target, resolve_target, swagger_uri_for
from aml_client.errors import ConfigError

KEY = "prodkey-0123456789abcdef0123456789abcdef"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def no_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend no local endpoint runs, whatever the machine is doing."""
    monkeypatch.setattr(config, "local_target", lambda: None)


@pytest.fixture
def fake_local(monkeypatch: pytest.MonkeyPatch) -> Target:
    target = Target(
        name="local",
        scoring_uri="http://127.0.0.1:5001/score",
        swagger_uri="http://127.0.0.1:5001/swagger.json",
        credential=KeyCredential("localkey-abcdef"),
        source="local endpoint",
    )
    monkeypatch.setattr(config, "local_target", lambda: target)
    return target


def test_config_lives_under_amlc_home(amlc_home: Path) -> None:
    assert config.config_path() == amlc_home / "config" / "config.toml"


def test_nothing_configured_says_how_to_fix_it(no_local: None) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_target()
    message = str(info.value)
    assert "amlc local up --detach" in message
    assert "AMLC_SCORING_URI" in message
    assert "amlc endpoint add" in message
    assert "\n" not in message


def test_environment_key(no_local: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMLC_SCORING_URI", "https://env.example/score")
    monkeypatch.setenv("AMLC_KEY", KEY)
    monkeypatch.setenv("AMLC_SWAGGER_URI", "https://env.example/swagger.json")
    target = resolve_target()
    assert (target.name, target.source) == ("env", "environment")
    assert target.scoring_uri == "https://env.example/score"
    assert target.swagger_uri == "https://env.example/swagger.json"
    assert isinstance(target.credential, KeyCredential)
    assert target.credential.auth_headers() == {"Authorization": f"Bearer {KEY}"}


def test_environment_token(no_local: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMLC_SCORING_URI", "https://env.example/score")
    monkeypatch.setenv("AMLC_TOKEN", "tok-123456")
    target = resolve_target()
    assert isinstance(target.credential, TokenCredential)
    assert target.credential.auth_headers() == {"Authorization": "Bearer tok-123456"}
    assert target.swagger_uri is None


def test_environment_without_secret_has_no_credential(
    no_local: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMLC_SCORING_URI", "http://127.0.0.1:9/score")
    assert resolve_target().credential is None


def test_order_explicit_then_env_then_default_then_local(
    fake_local: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the local endpoint: it is the fallback.
    assert resolve_target() is fake_local

    config.add_profile(Profile("prod", "https://prod.example/score", key=KEY))
    config.add_profile(Profile("staging", "https://staging.example/score", key=KEY))
    # The first profile added became the default, and beats the local endpoint.
    target = resolve_target()
    assert (target.name, target.source) == ("prod", "default profile")

    monkeypatch.setenv("AMLC_SCORING_URI", "https://env.example/score")
    assert resolve_target().name == "env"  # the environment beats the default profile

    assert resolve_target("staging").name == "staging"  # an explicit name beats everything
    assert resolve_target("local") is fake_local


def test_explicit_local_when_none_runs(no_local: None) -> None:
    with pytest.raises(ConfigError, match="amlc local up"):
        resolve_target("local")


def test_explicit_env_needs_the_variable(no_local: None) -> None:
    with pytest.raises(ConfigError, match="AMLC_SCORING_URI"):
        resolve_target("env")


def test_unknown_profile_lists_known_ones(no_local: None) -> None:
    config.add_profile(Profile("prod", "https://prod.example/score", key=KEY))
    with pytest.raises(ConfigError, match=r"no endpoint profile named 'nope' \(known: prod\)"):
        resolve_target("nope")


def test_config_file_is_private_and_holds_the_key(no_local: None) -> None:
    path = config.add_profile(Profile("prod", "https://prod.example/score", key=KEY))
    assert _mode(path) == 0o600
    data = tomllib.loads(path.read_text())
    assert data["endpoints"]["prod"]["key"] == KEY
    assert data["default"]["endpoint"] == "prod"
    # Rewrites keep the mode (atomic replace of a 0600 file).
    config.add_profile(Profile("other", "https://other.example/score", auth="none"))
    assert _mode(path) == 0o600


def test_key_never_in_repr_or_masked_views(no_local: None) -> None:
    config.add_profile(Profile("prod", "https://prod.example/score", key=KEY))
    profile = config.get_profile("prod")
    target = resolve_target("prod")
    for text in (repr(profile), repr(target), target.describe(), profile.masked_secret()):
        assert KEY not in text
        assert KEY[8:] not in text
    assert profile.masked_secret() == KEY[:4] + "…"


def test_key_from_environment_variable(no_local: None, monkeypatch: pytest.MonkeyPatch) -> None:
    path = config.add_profile(Profile("prod", "https://prod.example/score", key_env="PROD_KEY"))
    assert KEY not in path.read_text()
    monkeypatch.setenv("PROD_KEY", KEY)
    target = resolve_target("prod")
    assert target.credential is not None
    assert target.credential.auth_headers()["Authorization"] == f"Bearer {KEY}"
    assert config.get_profile("prod").masked_secret() == f"$PROD_KEY ({KEY[:4]}…)"

    monkeypatch.delenv("PROD_KEY")
    with pytest.raises(ConfigError, match=r"\$PROD_KEY, which is not set"):
        resolve_target("prod")
    assert config.get_profile("prod").masked_secret() == "$PROD_KEY (not set)"


def test_key_env_wins_over_stored_key(no_local: None, monkeypatch: pytest.MonkeyPatch) -> None:
    config.add_profile(Profile("prod", "https://p/score", key="stored-key", key_env="PROD_KEY"))
    monkeypatch.setenv("PROD_KEY", "from-env-key")
    credential = resolve_target("prod").credential
    assert credential is not None
    assert credential.auth_headers()["Authorization"] == "Bearer from-env-key"


def test_auth_kinds(no_local: None) -> None:
    config.add_profile(Profile("open", "http://127.0.0.1:1/score", auth="none"))
    config.add_profile(Profile("tok", "https://t.example/score", auth="token", key="tok-abcdef"))
    assert resolve_target("open").credential is None
    assert isinstance(resolve_target("tok").credential, TokenCredential)


def test_key_profile_without_key_is_a_clear_error(no_local: None) -> None:
    config.add_profile(Profile("bare", "https://b.example/score", auth="key"))
    with pytest.raises(ConfigError, match="profile 'bare' has no key"):
        resolve_target("bare")


def test_group_readable_file_with_key_is_refused(no_local: None) -> None:
    path = config.add_profile(Profile("prod", "https://prod.example/score", key=KEY))
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match=r"readable by other users .*chmod 600") as info:
        resolve_target("prod")
    assert KEY not in str(info.value)


def test_group_readable_file_without_key_only_warns(
    no_local: None, caplog: pytest.LogCaptureFixture
) -> None:
    path = config.add_profile(Profile("prod", "https://prod.example/score", key_env="X"))
    os.chmod(path, 0o640)
    with caplog.at_level(logging.WARNING, logger="aml_client.config"):
        assert config.get_profile("prod").key_env == "X"
    assert "chmod 600" in caplog.text


def test_invalid_toml_names_the_file(no_local: None) -> None:
    path = config.config_path()
    path.parent.mkdir(parents=True)
    path.write_text("[endpoints.prod\nscoring_uri = 1\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve_target()


def test_profile_without_uri_or_with_bad_auth(no_local: None) -> None:
    path = config.config_path()
    path.parent.mkdir(parents=True)
    path.write_text(
        '[endpoints.a]\nauth = "key"\n'
        '[endpoints.b]\nscoring_uri = "http://x/score"\nauth = "magic"\n'
    )
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="profile 'a' has no scoring_uri"):
        resolve_target("a")
    with pytest.raises(ConfigError, match="auth = 'magic'"):
        resolve_target("b")


@pytest.mark.parametrize("name", ["local", "env", "", "has space", "a/b"])
def test_reserved_and_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        config.add_profile(Profile(name, "https://x.example/score", auth="none"))
    assert not config.config_path().exists()


def test_bad_scoring_uri_is_refused() -> None:
    with pytest.raises(ConfigError, match="http:// or https://"):
        config.add_profile(Profile("x", "ftp://x.example/score", auth="none"))


def test_remove_and_use(no_local: None) -> None:
    config.add_profile(Profile("a", "https://a.example/score", auth="none"))
    config.add_profile(Profile("b", "https://b.example/score", auth="none"))
    assert config.default_profile_name() == "a"
    config.set_default("b")
    assert resolve_target().name == "b"
    config.add_profile(Profile("c", "https://c.example/score", auth="none"), make_default=True)
    assert config.default_profile_name() == "c"
    config.remove_profile("c")
    assert config.default_profile_name() is None
    assert [p.name for p in config.list_profiles()] == ["a", "b"]
    with pytest.raises(ConfigError):
        config.set_default("c")
    with pytest.raises(ConfigError):
        config.remove_profile("c")


def test_replace_false_keeps_existing(no_local: None) -> None:
    config.add_profile(Profile("a", "https://a.example/score", auth="none"))
    with pytest.raises(ConfigError, match="exists already"):
        config.add_profile(Profile("a", "https://z.example/score", auth="none"), replace=False)
    assert config.get_profile("a").scoring_uri == "https://a.example/score"


def test_verify_false_round_trips(no_local: None) -> None:
    config.add_profile(Profile("self", "https://s.example/score", auth="none", verify=False))
    assert resolve_target("self").verify is False


def test_profile_with_token_command_and_deployment_round_trips(
    no_local: None, tmp_path: Path
) -> None:
    script = tmp_path / "print_token.py"
    script.write_text("print('from-the-command')\n")
    command = f"{sys.executable} {script}"
    profile = Profile(
        "aad", "https://h.example/score", auth="token", token_command=command, deployment="blue"
    )
    config.add_profile(profile)
    profile = config.get_profile("aad")
    assert (profile.token_command, profile.deployment) == (command, "blue")
    assert profile.masked_secret() == "(token command)"
    target = resolve_target("aad")
    assert target.deployment == "blue"
    assert isinstance(target.credential, TokenCredential)
    assert target.credential.secret() == "from-the-command"


def test_environment_token_command_and_deployment(
    no_local: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = tmp_path / "print_token.py"
    script.write_text("print('env-token')\n")
    monkeypatch.setenv("AMLC_SCORING_URI", "https://h.example/score")
    monkeypatch.setenv("AMLC_TOKEN_COMMAND", f"{sys.executable} {script}")
    monkeypatch.setenv("AMLC_DEPLOYMENT", "green")
    target = resolve_target()
    assert target.deployment == "green"
    assert target.credential is not None and target.credential.secret() == "env-token"


def test_configuration_never_imports_the_client() -> None:
    code = (
        "import sys, aml_client.config as c\n"
        "c.resolve_target\n"
        "print(sorted(m for m in sys.modules if m in ('aml_client.client', 'httpx')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    source = Path(config.__file__).read_text()
    assert "import aml_client.client" not in source
    assert "from aml_client.client" not in source


@pytest.mark.parametrize(
    ("scoring", "swagger"),
    [
        ("http://127.0.0.1:5001/score", "http://127.0.0.1:5001/swagger.json"),
        (
            "https://x.westeurope.inference.ml.azure.com/score",
            "https://x.westeurope.inference.ml.azure.com/swagger.json",
        ),
        (
            "http://1.2.3.4/api/v1/service/bank/score",
            "http://1.2.3.4/api/v1/service/bank/swagger.json",
        ),
        ("http://h/score/", "http://h/swagger.json"),
    ],
)
def test_swagger_uri_beside_the_scoring_uri(scoring: str, swagger: str) -> None:
    assert swagger_uri_for(scoring) == swagger
