"""``polly keys`` as an operator runs it: a real process, a real SQLite file, a real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from tests.conftest import REPO

POLLY = [sys.executable, "-m", "app"]
GUILD = "1191168914252365824"
HUGE = "18446744073709551615"


def polly_keys(
    data_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    # Only the data directory: the key commands must not need a bot token or a secret key.
    base = {name: value for name, value in os.environ.items() if not name.startswith("POLLY_")}
    return subprocess.run(
        [*POLLY, "keys", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**base, "POLLY_DATA_DIR": str(data_dir), **(env or {})},
        timeout=timeout,
    )


def create(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = polly_keys(data_dir, "create", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    created: dict[str, Any] = json.loads(result.stdout)
    return created


def listed(data_dir: Path) -> list[dict[str, Any]]:
    result = polly_keys(data_dir, "list", "--json")
    assert result.returncode == 0, result.stderr
    keys: list[dict[str, Any]] = json.loads(result.stdout)
    return keys


def test_create_list_revoke(tmp_path: Path, redis_url: str) -> None:
    created = create(tmp_path, "--guild", GUILD, "--guild", HUGE, "--scope", "roles:read", "--name", "ci bot")
    token, key_id = created["token"], created["id"]
    secret = token.removeprefix(f"polly_{key_id}_")
    assert token.startswith(f"polly_{key_id}_")
    assert len(secret) >= 40
    assert created["guild_ids"] == sorted([GUILD, HUGE])
    assert created["scopes"] == ["roles:read"]
    assert created["revoked"] is False
    assert (tmp_path / "polly.db").is_file()

    table = polly_keys(tmp_path, "list")
    assert table.returncode == 0, table.stderr
    assert key_id in table.stdout
    assert "ci bot" in table.stdout
    assert HUGE in table.stdout
    assert secret not in table.stdout
    [entry] = listed(tmp_path)
    assert entry["id"] == key_id
    assert entry["revoked_at"] is None
    assert "token" not in entry
    assert secret not in json.dumps(entry)
    assert not any("hash" in field for field in entry)

    revoked = polly_keys(tmp_path, "revoke", key_id, env={"POLLY_REDIS_URL": redis_url})
    assert revoked.returncode == 0, revoked.stderr
    assert f"Revoked API key {key_id}" in revoked.stdout
    assert revoked.stderr == ""
    [entry] = listed(tmp_path)
    assert entry["revoked"] is True
    assert entry["revoked_at"] is not None
    table = polly_keys(tmp_path, "list")
    assert entry["revoked_at"][:10] in table.stdout.splitlines()[1]


def test_create_without_json_shows_the_token_once(tmp_path: Path) -> None:
    result = polly_keys(tmp_path, "create", "--guild", GUILD, "--scope", "roles:read")
    assert result.returncode == 0, result.stderr
    assert "polly_" in result.stdout
    assert "cannot be shown again" in result.stdout
    assert GUILD in result.stdout
    assert "roles:read" in result.stdout


def test_an_unknown_scope_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    result = polly_keys(tmp_path, "create", "--guild", GUILD, "--scope", "roles:write")
    assert result.returncode == 2
    assert "Unknown scope 'roles:write'; the known scopes are roles:read, polls:read, polls:write." in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    # Refused before the database is touched.
    assert not (tmp_path / "polly.db").exists()


def test_a_bad_guild_is_refused_with_a_sentence(tmp_path: Path) -> None:
    for guild in ("abc", "0", "18446744073709551616"):
        result = polly_keys(tmp_path, "create", "--guild", guild, "--scope", "roles:read")
        assert result.returncode == 2
        assert f"'{guild}' is not a Discord server id" in result.stderr
        assert "Traceback" not in result.stderr
    missing = polly_keys(tmp_path, "create", "--scope", "roles:read")
    assert missing.returncode == 2
    assert "at least one Discord server" in missing.stderr


def test_revoke_deletes_the_cached_copy_from_redis(tmp_path: Path, redis_url: str) -> None:
    env = {"POLLY_REDIS_URL": redis_url, "POLLY_CACHE_PREFIX": "t1:"}
    key_id = create(tmp_path, "--guild", GUILD, "--scope", "roles:read")["id"]
    other = create(tmp_path, "--guild", GUILD, "--scope", "roles:read")["id"]
    client = redis.Redis.from_url(redis_url)
    try:
        client.set(f"t1:api_key:{{key:{key_id}}}", b"cached record")
        client.set(f"t1:api_key:{{key:{other}}}", b"cached record")
        result = polly_keys(tmp_path, "revoke", key_id, env=env)
        assert result.returncode == 0, result.stderr
        assert client.get(f"t1:api_key:{{key:{key_id}}}") is None
        assert client.get(f"t1:api_key:{{key:{other}}}") == b"cached record"
    finally:
        client.close()


def test_revoke_with_redis_down_still_revokes_and_warns(tmp_path: Path) -> None:
    key_id = create(tmp_path, "--guild", GUILD, "--scope", "roles:read")["id"]
    env = {"POLLY_REDIS_URL": "redis://:hunter2@127.0.0.1:1/0", "POLLY_API_KEY_CACHE_TTL": "42"}
    result = polly_keys(tmp_path, "revoke", key_id, env=env)
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr
    assert "stops working within 42 seconds" in result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr
    [entry] = listed(tmp_path)
    assert entry["revoked"] is True


def test_revoking_an_unknown_key_says_so(tmp_path: Path) -> None:
    result = polly_keys(tmp_path, "revoke", "nosuchkey000")
    assert result.returncode == 2
    assert "No API key has the id 'nosuchkey000'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_stops_with_a_sentence(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://polly:hunter2@127.0.0.1:1/polly"
    result = polly_keys(tmp_path, "list", env={"POLLY_DATABASE_URL": url})
    assert result.returncode == 2
    assert (
        "polly keys list: The database at postgresql+asyncpg://polly:***@127.0.0.1:1/polly" in result.stderr
    )
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr

    plain = polly_keys(tmp_path, "list", env={"POLLY_DATABASE_URL": "postgresql://polly@db/polly"})
    assert plain.returncode == 2
    assert "use postgresql+asyncpg://" in plain.stderr


def test_an_unwritable_data_dir_stops_with_a_sentence(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = polly_keys(blocker / "data", "list")
    assert result.returncode == 2
    assert "POLLY_DATA_DIR" in result.stderr
    assert "Traceback" not in result.stderr


def test_first_runs_at_once_all_succeed(tmp_path: Path) -> None:
    base = {name: value for name, value in os.environ.items() if not name.startswith("POLLY_")}
    processes = [
        subprocess.Popen(
            [*POLLY, "keys", "list", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**base, "POLLY_DATA_DIR": str(tmp_path)},
        )
        for _ in range(4)
    ]
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert json.loads(stdout) == []
