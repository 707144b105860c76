from __future__ import annotations

import pytest

from src.redis_io.connection import arq_redis_settings, parse_redis_url


@pytest.mark.parametrize(
    ("url", "hosts", "database", "password", "ssl", "master"),
    [
        ("redis://127.0.0.1:6379/0", (("127.0.0.1", 6379),), 0, None, False, None),
        ("redis://localhost", (("localhost", 6379),), 0, None, False, None),
        ("rediss://:s3cret@cache.internal:6380/4", (("cache.internal", 6380),), 4, "s3cret", True, None),
        (
            "redis+sentinel://:pw@s1:26379,s2:26380,s3/mymaster/2",
            (("s1", 26379), ("s2", 26380), ("s3", 26379)),
            2,
            "pw",
            False,
            "mymaster",
        ),
        ("redis+sentinel://s1/cerniq", (("s1", 26379),), 0, None, False, "cerniq"),
    ],
)
def test_parse(
    url: str,
    hosts: tuple[tuple[str, int], ...],
    database: int,
    password: str | None,
    ssl: bool,
    master: str | None,
) -> None:
    target = parse_redis_url(url)
    assert (target.hosts, target.database, target.password, target.ssl, target.sentinel_master) == (
        hosts,
        database,
        password,
        ssl,
        master,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost:6379", "must start with"),
        ("redis://localhost:6379/cache", "database number"),
        ("redis://a:1,b:2/0", "redis\\+sentinel"),
        ("redis+sentinel://s1:26379", "names its master"),
        ("redis://host:port/0", "bad port"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_redis_url(url)


def test_arq_settings_for_sentinel() -> None:
    settings = arq_redis_settings("redis+sentinel://:pw@s1:26379,s2:26380/mymaster/3")
    assert settings.sentinel
    assert settings.host == [("s1", 26379), ("s2", 26380)]
    assert (settings.sentinel_master, settings.database, settings.password) == ("mymaster", 3, "pw")
