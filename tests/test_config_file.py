"""Configuration files: valid ones load, bad ones are refused with the key named, and
`mediasrv check-config` / `mediasrv serve --config` use them (real processes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mediasrv.config_file import ConfigError, config_from_dict, load_config

GOOD = """
host = "127.0.0.1"
port = 0
tokens = ["s3cret-token"]

[media]
rtc_port = 0
announced_ip = "127.0.0.1"
max_incoming_bitrate = 2000000

[[plugins]]
name = "nothing-installed"
[plugins.config]
x = 1
"""


def test_a_file_loads_into_the_server_config(tmp_path: Path) -> None:
    path = tmp_path / "mediasrv.toml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.tokens == frozenset({"s3cret-token"})
    assert config.media.announced == "127.0.0.1" and config.media.max_incoming_bitrate == 2_000_000
    assert [(p.name, dict(p.config)) for p in config.plugins] == [("nothing-installed", {"x": 1})]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"prot": 80}, "prot: unknown key"),
        ({"port": "80"}, "port: expected int, got str"),
        ({"port": 70000}, "port: 70000 is outside 0..65535"),
        ({"media": {"rtc_port": True}}, "media.rtc_port: expected int, got bool"),
        ({"media": {"listen_ip": "here"}}, "media.listen_ip: 'here' is not an IP address"),
        ({"media": []}, "media: expected a table"),
        ({"tokens": "abc"}, "tokens: expected a list of non-empty strings"),
        ({"plugins": [{"config": {}}]}, "plugins[0].name: required"),
        ({"plugins": [{"name": "x", "cfg": {}}]}, "plugins[0].cfg: unknown key"),
        ({"cluster": {"redis_url": "redis://127.0.0.1:6379/0"}}, "cluster.secret: at least 16"),
        ({"cluster": {"redis_url": "http://x"}}, "cluster.redis_url: a redis://"),
    ],
)
def test_bad_values_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config_from_dict(data)
    assert message in str(refused.value)


def test_the_cluster_secret_is_never_shown_in_the_config() -> None:
    secret = "the-shared-cluster-secret-42"
    config = config_from_dict({"cluster": {"redis_url": "redis://10.0.0.5/0", "secret": secret}})
    assert config.cluster.secret == secret
    assert secret not in repr(config)


def test_check_config_and_serve_refuse_bad_files_with_exit_code_2(tmp_path: Path) -> None:
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("port = = 1\n")
    unknown_plugin = tmp_path / "plugin.toml"
    unknown_plugin.write_text('[[plugins]]\nname = "nothing-installed"\n')
    good = tmp_path / "good.toml"
    good.write_text('host = "127.0.0.1"\nport = 0\n')
    cli = [sys.executable, "-m", "mediasrv"]
    result = subprocess.run([*cli, "check-config", str(bad_toml)], capture_output=True, text=True)
    assert result.returncode == 2 and "not valid TOML" in result.stderr
    result = subprocess.run(
        [*cli, "check-config", str(unknown_plugin)], capture_output=True, text=True
    )
    assert result.returncode == 2 and "plugins.nothing-installed: not installed" in result.stderr
    result = subprocess.run([*cli, "check-config", str(good)], capture_output=True, text=True)
    assert result.returncode == 0 and "ok" in result.stdout
    result = subprocess.run(
        [*cli, "serve", "--config", str(unknown_plugin)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and "not installed" in result.stderr
