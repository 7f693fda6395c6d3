"""Federated identity credential decisions without I/O: the issuer policy, the mark, and the
plan that converges an application's credentials by name (what it creates, updates and
removes, in which order, and what it refuses before any write)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from shared.domain import stored
from shared.domain.federated import (
    AUDIENCE,
    Create,
    FederatedCredential,
    Remove,
    Update,
    desired_federated,
    federated_problems,
    plan_federated,
)
from shared.messages.requests import (
    FEDERATED_TEXT_LIMIT,
    MAX_FEDERATED_CREDENTIALS,
    MAX_FEDERATED_DESCRIPTION,
)
from tests.messages.requests_fixtures import VALID, register, with_changes

GITHUB = "https://token.actions.githubusercontent.com"
OTHER = "https://oidc.contoso.com"


def request(*entries: dict[str, Any]):
    return register(with_changes("federatedCredentials", list(entries), VALID))


def mine(name: str, subject: str, issuer: str = GITHUB, id: str | None = None, text: str | None = None):
    """A credential the service made (marked), as Graph lists it."""
    return FederatedCredential(
        name, issuer, subject, stored.federated_description(text), (AUDIENCE,), id or f"id-{name}"
    )


def by_hand(name: str, subject: str, issuer: str = GITHUB) -> FederatedCredential:
    return FederatedCredential(name, issuer, subject, "made in the portal", (AUDIENCE,), f"id-{name}")


def want(name: str, subject: str, issuer: str = GITHUB, text: str | None = None) -> FederatedCredential:
    return FederatedCredential(name, issuer, subject, stored.federated_description(text))


def kinds(plan: Any) -> list[tuple[str, str, str]]:
    return [(type(w).__name__, w.credential.name, w.credential.subject) for w in plan.writes]


# ---------------------------------------------------------------- the mark and the issuer policy


def test_the_mark_tells_the_services_credentials_and_fits_graphs_limit() -> None:
    assert stored.federated_description(None) == "[managed]"
    assert stored.federated_description("deploy from main") == "[managed] deploy from main"
    assert stored.is_service_federated("[managed] deploy from main")
    assert not stored.is_service_federated("deploy [managed]")
    assert not stored.is_service_federated(None)
    longest = stored.federated_description("d" * MAX_FEDERATED_DESCRIPTION)
    assert len(longest) <= FEDERATED_TEXT_LIMIT


def test_desired_credentials_are_marked_in_request_order() -> None:
    wanted = desired_federated(
        request(
            {
                "name": "main",
                "issuer": GITHUB,
                "subject": "repo:c/a:ref:refs/heads/main",
                "description": "ci",
            },
            {"name": "prod", "issuer": GITHUB, "subject": "repo:c/a:environment:prod"},
        )
    )
    assert [(c.name, c.description, c.audiences, c.id) for c in wanted] == [
        ("main", "[managed] ci", (AUDIENCE,), None),
        ("prod", "[managed]", (AUDIENCE,), None),
    ]


def test_an_issuer_off_the_allow_list_is_refused_by_position() -> None:
    req = request(
        {"name": "github", "issuer": GITHUB, "subject": "s1"},
        {"name": "other", "issuer": OTHER, "subject": "s2"},
        {"name": "slash", "issuer": GITHUB + "/", "subject": "s3"},  # issuers compare exactly
    )
    problems = federated_problems(req, (GITHUB,))
    assert [(p.field, p.code) for p in problems] == [
        ("federatedCredentials[1].issuer", "issuer_not_allowed"),
        ("federatedCredentials[2].issuer", "issuer_not_allowed"),
    ]
    assert GITHUB in problems[0].message
    assert [p.field for p in federated_problems(req, ())] == [
        f"federatedCredentials[{i}].issuer" for i in range(3)
    ]
    assert federated_problems(request(), ()) == []


# ---------------------------------------------------------------- converge by name


def test_a_new_application_gets_every_requested_credential() -> None:
    plan = plan_federated([want("a", "s1"), want("b", "s2")], [])
    assert kinds(plan) == [("Create", "a", "s1"), ("Create", "b", "s2")]
    assert [c.name for c in plan.wanted] == ["a", "b"]
    assert plan.problems == ()


def test_nothing_to_do_when_the_application_already_holds_the_request() -> None:
    existing = [mine("a", "s1"), mine("b", "s2", text="ci")]
    plan = plan_federated([want("a", "s1"), want("b", "s2", text="ci")], existing)
    assert plan.writes == ()
    assert [c.id for c in plan.wanted] == ["id-a", "id-b"]


def test_converge_removes_then_updates_then_creates_and_leaves_hand_made_ones_alone() -> None:
    existing = [mine("keep", "s1"), mine("change", "old"), mine("drop", "s3"), by_hand("portal", "p1")]
    plan = plan_federated([want("keep", "s1"), want("change", "new"), want("add", "s4")], existing)
    assert kinds(plan) == [("Remove", "drop", "s3"), ("Update", "change", "new"), ("Create", "add", "s4")]
    [update] = [w for w in plan.writes if isinstance(w, Update)]
    assert update.credential.id == "id-change"  # the same credential: names are immutable
    assert [(c.name, c.id) for c in plan.wanted] == [
        ("keep", "id-keep"),
        ("change", "id-change"),
        ("add", None),
    ]


def test_names_match_case_insensitively_and_keep_graphs_spelling() -> None:
    plan = plan_federated([want("deploy", "new")], [mine("Deploy", "old")])
    assert kinds(plan) == [("Update", "Deploy", "new")]
    assert plan.wanted[0].name == "Deploy"


def test_a_changed_description_or_audience_is_updated() -> None:
    edited = replace(mine("a", "s1"), audiences=("api://AzureADTokenExchangeUSGov",))
    assert kinds(plan_federated([want("a", "s1")], [edited])) == [("Update", "a", "s1")]
    assert kinds(plan_federated([want("a", "s1", text="new words")], [mine("a", "s1")])) == [
        ("Update", "a", "s1")
    ]


def test_a_pair_moves_to_another_name_only_after_its_holder_is_removed() -> None:
    plan = plan_federated([want("new-name", "s1")], [mine("old-name", "s1")])
    assert kinds(plan) == [("Remove", "old-name", "s1"), ("Create", "new-name", "s1")]


def test_an_update_waits_for_the_credential_that_holds_its_new_pair() -> None:
    # b takes a's subject, a moves on to a fresh one: a must go first.
    plan = plan_federated([want("b", "s1"), want("a", "s0")], [mine("a", "s1"), mine("b", "s2")])
    assert kinds(plan) == [("Update", "a", "s0"), ("Update", "b", "s1")]


def test_swapped_pairs_park_one_credential_first() -> None:
    plan = plan_federated([want("a", "s2"), want("b", "s1")], [mine("a", "s1"), mine("b", "s2")])
    steps = kinds(plan)
    assert steps[0][:2] == ("Update", "a") and steps[0][2].startswith(
        "urn:entra-app-registration-service:moving:"
    )
    assert steps[1:] == [("Update", "b", "s1"), ("Update", "a", "s2")]
    _never_two_holders(plan, [mine("a", "s1"), mine("b", "s2")])


def test_a_rotation_of_three_pairs_never_holds_one_pair_twice() -> None:
    existing = [mine("a", "s1"), mine("b", "s2"), mine("c", "s3")]
    plan = plan_federated([want("a", "s2"), want("b", "s3"), want("c", "s1")], existing)
    assert len(plan.writes) == 4  # one parking, three updates
    _never_two_holders(plan, existing)
    assert {(c.name, c.subject) for c in plan.wanted} == {("a", "s2"), ("b", "s3"), ("c", "s1")}


def _never_two_holders(plan: Any, existing: list[FederatedCredential]) -> None:
    """Replay the writes as Graph would apply them: no pair or name is ever held twice."""
    held = {c.id: c for c in existing}
    for write in plan.writes:
        credential = write.credential
        if isinstance(write, Remove):
            del held[credential.id]
            continue
        if isinstance(write, Create):
            credential = replace(credential, id=f"new-{credential.name}")
        others = [c for i, c in held.items() if i != credential.id]
        assert credential.pair not in {c.pair for c in others}, write
        assert credential.name.casefold() not in {c.name.casefold() for c in others}, write
        held[credential.id] = credential
        assert len(held) <= MAX_FEDERATED_CREDENTIALS


# ---------------------------------------------------------------- refused before any write


def test_a_hand_made_credential_with_a_requested_name_is_a_conflict() -> None:
    plan = plan_federated([want("ok", "s0"), want("PORTAL", "s9")], [by_hand("portal", "p1")])
    assert [(p.field, p.code) for p in plan.problems] == [("federatedCredentials[1].name", "conflict")]
    assert plan.writes == ()


def test_a_hand_made_credentials_issuer_and_subject_is_a_conflict() -> None:
    plan = plan_federated([want("mine", "p1")], [by_hand("portal", "p1")])
    assert [(p.field, p.code) for p in plan.problems] == [("federatedCredentials[0].subject", "conflict")]
    # the same subject from another issuer is another pair
    assert plan_federated([want("mine", "p1", issuer=OTHER)], [by_hand("portal", "p1")]).problems == ()


def test_the_limit_counts_hand_made_credentials_and_the_request() -> None:
    hand_made = [by_hand(f"portal-{i}", f"p{i}") for i in range(19)]
    assert plan_federated([want("one", "s1")], hand_made).problems == ()
    plan = plan_federated([want("one", "s1"), want("two", "s2")], hand_made)
    [problem] = plan.problems
    assert (problem.field, problem.code) == ("federatedCredentials", "too_many")
    assert "at most 1" in problem.message
    assert plan.writes == ()


def test_the_services_own_credentials_do_not_count_against_the_request() -> None:
    existing = [mine(f"old-{i}", f"s{i}") for i in range(20)]
    requested = [want(f"new-{i}", f"t{i}") for i in range(20)]
    plan = plan_federated(requested, existing)
    assert plan.problems == ()
    assert [type(w).__name__ for w in plan.writes] == ["Remove"] * 20 + ["Create"] * 20
    _never_two_holders(plan, existing)


@pytest.mark.parametrize("count", [0, 1, 20])
def test_a_request_for_nothing_removes_only_the_services(count: int) -> None:
    existing = [mine(f"m{i}", f"s{i}") for i in range(count)] + [by_hand("portal", "p")]
    plan = plan_federated([], existing)
    assert kinds(plan) == [("Remove", f"m{i}", f"s{i}") for i in range(count)]
    assert plan.wanted == ()
