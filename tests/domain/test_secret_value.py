"""SecretValue never shows its value by accident."""

import copy
import json
import logging
import pickle

import pytest

from shared.domain.secret_value import SecretValue

PLAINTEXT = "s3cr3t~Value.With-Chars_0123456789"


@pytest.fixture
def secret() -> SecretValue:
    return SecretValue(PLAINTEXT)


def test_reveal_is_the_way_out(secret: SecretValue) -> None:
    assert secret.reveal() == PLAINTEXT


@pytest.mark.parametrize(
    "render",
    [
        str,
        repr,
        lambda s: f"{s}",
        lambda s: f"{s!r}",
        lambda s: f"{s!s}",
        lambda s: f"{s:>60}",
        lambda s: "{}".format(s),  # noqa: UP032
        lambda s: "%s %r" % (s, s),  # noqa: UP031
        lambda s: str([s, {"secret": s}]),
        lambda s: repr((s,)),
    ],
)
def test_text_renderings_are_masked(secret: SecretValue, render) -> None:
    text = render(secret)
    assert PLAINTEXT not in text
    assert "SecretValue(***)" in text


def test_logging_shows_the_mask(secret: SecretValue, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.secrets")
    with caplog.at_level(logging.DEBUG, logger="test.secrets"):
        logger.info("value %s", secret)
        logger.info("value %r", secret)
        logger.info("values %(v)s", {"v": secret})
        try:
            raise RuntimeError(secret)
        except RuntimeError:
            logger.exception("failed")
    assert caplog.records
    assert PLAINTEXT not in caplog.text
    assert "SecretValue(***)" in caplog.text


def test_not_json_serialisable(secret: SecretValue) -> None:
    with pytest.raises(TypeError):
        json.dumps(secret)
    with pytest.raises(TypeError):
        json.dumps({"value": secret})


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_not_picklable(secret: SecretValue, protocol: int) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(secret, protocol=protocol)


def test_copies_are_the_same_object(secret: SecretValue) -> None:
    assert copy.copy(secret) is secret
    assert copy.deepcopy({"s": secret})["s"] is secret


def test_equality_is_identity_not_value(secret: SecretValue) -> None:
    assert secret == secret
    assert secret != SecretValue(PLAINTEXT)
    assert secret != PLAINTEXT
    assert len({secret, SecretValue(PLAINTEXT)}) == 2


def test_no_instance_dict(secret: SecretValue) -> None:
    with pytest.raises(TypeError):
        vars(secret)


def test_holds_only_strings() -> None:
    with pytest.raises(TypeError):
        SecretValue(b"bytes")  # type: ignore[arg-type]
