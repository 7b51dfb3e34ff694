"""The proof a cluster node sends with a relayed signaling connection (relay_proof.py): only
a node with the secret makes one, for one target node, within its age, once."""

from __future__ import annotations

import time

import pytest

from mediasrv.cluster.relay_proof import MAX_AGE, RelayProofs, make_proof

SECRET = "cluster-secret-of-the-tests-0123"


def test_a_proof_from_a_node_is_accepted_once_by_the_node_it_names() -> None:
    proofs = RelayProofs(SECRET, "n1")
    proof = make_proof(SECRET, "n2", "n1")
    assert proofs.check(proof) == "n2"
    assert proofs.check(proof) is None  # replayed
    assert proofs.check(make_proof(SECRET, "n2", "n1")) == "n2"  # a new one


@pytest.mark.parametrize(
    "value",
    [
        "n1",  # the old header: a node id alone
        make_proof("another-secret-0123456789", "n2", "n1"),
        make_proof(SECRET, "n2", "n3"),  # for another node
        make_proof(SECRET, "n2", "n1", now=time.time() - MAX_AGE - 5),  # too old
        make_proof(SECRET, "n2", "n1", now=time.time() + MAX_AGE + 5),  # from the future
        "n2 n1 \u00b2 " + "0" * 32 + " " + "0" * 64,  # a digit that is not 0-9
        make_proof(SECRET, "n2", "n1")[:-1] + "\u00e9",  # not ASCII
        make_proof(SECRET, "n2", "n1") + " extra",
        "x" * 300,
        "",
    ],
)
def test_anything_else_is_refused_without_raising(value: str) -> None:
    assert RelayProofs(SECRET, "n1").check(value) is None


def test_a_tampered_proof_is_refused() -> None:
    node, target, stamp, nonce, mac = make_proof(SECRET, "n2", "n1").split(" ")
    proofs = RelayProofs(SECRET, "n1")
    assert proofs.check(" ".join(["n9", target, stamp, nonce, mac])) is None
    assert proofs.check(" ".join([node, target, str(int(stamp) + 1), nonce, mac])) is None
    assert proofs.check(" ".join([node, target, stamp, "f" * 32, mac])) is None


def test_without_a_secret_nothing_is_accepted() -> None:
    assert RelayProofs("", "n1").check(make_proof("", "n2", "n1")) is None
