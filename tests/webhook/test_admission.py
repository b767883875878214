"""Response constructors and review parsing."""

from __future__ import annotations

import base64
import json

import pytest

from webhook.server.admission import (
    MAX_WARNING_CHARS,
    MAX_WARNINGS_BYTES,
    V1,
    V1BETA1,
    BadReview,
    allowed,
    bound_warnings,
    denial_message,
    denied,
    http_error,
    parse_review,
    patched,
)


def test_warnings_are_cut_to_256_chars_and_4_kb_with_a_summary() -> None:
    lines = [f"policy-{i}: " + "x" * 400 for i in range(40)]
    out = bound_warnings(lines)
    assert all(len(w) <= MAX_WARNING_CHARS for w in out)
    assert sum(len(w.encode()) for w in out) <= MAX_WARNINGS_BYTES
    assert out[0].startswith("policy-0: ")
    assert out[0].endswith("…")
    kept = len(out) - 1
    assert out[-1].startswith(f"... and {40 - kept} more podgate warning(s)")


def test_warnings_that_fit_are_kept_whole_and_cleaned() -> None:
    assert bound_warnings(["a\nb\tc", "  ", "d"]) == ("a b c", "d")
    assert bound_warnings(["w"] * 3) == ("w", "w", "w")


def test_denial_message_lists_each_line() -> None:
    message = denial_message("Pod shop/web", ["p: one", "q: two"])
    assert message == "Pod shop/web violates 2 podgate policy rules:\n- p: one\n- q: two"
    assert denial_message("Pod a/b", ["p: x"]).startswith("Pod a/b violates 1 podgate policy rule:")
    long = denial_message("Pod a/b", [f"p: {'y' * 100}" for _ in range(500)])
    assert len(long) < 12_200
    assert long.endswith("more; see the podgate logs")


def test_denial_message_says_what_podgate_could_not_evaluate() -> None:
    only = denial_message("Pod a/b", [], ["p: podgate could not evaluate it: why"])
    assert only == (
        "podgate could not check Pod a/b against 1 policy, so it is refused:\n"
        "- p: podgate could not evaluate it: why"
    )
    both = denial_message("Pod a/b", ["p: one", "p: two"], ["q: x", "r: y"])
    assert both.splitlines() == [
        "Pod a/b violates 2 podgate policy rules, and podgate could not check it against "
        "2 policies:",
        "- p: one", "- p: two", "- q: x", "- r: y",
    ]  # fmt: skip


def test_constructors() -> None:
    assert allowed("u").as_dict() == {"uid": "u", "allowed": True}
    refused = denied("u", "no", ["careful"]).as_dict()
    assert refused["status"] == {"status": "Failure", "code": 403, "reason": "Forbidden",
                                 "message": "no"}  # fmt: skip
    assert refused["warnings"] == ["careful"]
    assert patched("u", []).as_dict() == {"uid": "u", "allowed": True}
    ops = [{"op": "add", "path": "/a", "value": 1}]
    out = patched("u", ops).as_dict()
    assert out["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(out["patch"])) == ops
    encoded = json.loads(allowed("u").encode(V1BETA1))
    assert encoded == {"apiVersion": V1BETA1, "kind": "AdmissionReview",
                       "response": {"uid": "u", "allowed": True}}  # fmt: skip


def test_http_error_is_a_status() -> None:
    body = json.loads(http_error(415, "wrong type"))
    assert body["kind"] == "Status"
    assert body["reason"] == "UnsupportedMediaType"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "malformed JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}', "request: Field"),
        (b'{"apiVersion":"v1","kind":"AdmissionReview","request":{"uid":"x"}}', "apiVersion"),
        (
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}',
            "request.uid: Field required",
        ),
        (
            b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",'
            b'"request":{"uid":"x","dryRun":"yes"}}',
            "request.dryRun: Input should be a valid boolean",
        ),
    ],
)
def test_bad_reviews(body: bytes, reason: str) -> None:
    with pytest.raises(BadReview, match=reason):
        parse_review(body)


def test_review_fields() -> None:
    review = parse_review(
        b'{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":'
        b'{"uid":"1","operation":"UPDATE","subResource":"ephemeralcontainers","dryRun":null,'
        b'"userInfo":{"username":"bob"},"object":{"kind":"Pod"},"unknownField":1}}'
    )
    req = review.request
    assert (req.operation, req.sub_resource, req.dry_run) == ("UPDATE", "ephemeralcontainers", None)
    assert req.user_info.username == "bob"
    assert req.object == {"kind": "Pod"}


def test_responses_encode_what_orjson_refuses_through_the_standard_library() -> None:
    # a patch can copy a user's integer, and JSON allows any size
    huge = 2**70
    response = patched("u-1", [{"op": "add", "path": "/spec/x", "value": huge}])
    assert response.patch is not None
    assert json.loads(base64.b64decode(response.patch)) == [
        {"op": "add", "path": "/spec/x", "value": huge}
    ]
    review = json.loads(denied("u-2", "nöt ällowed ✗").encode(V1))
    assert review["response"]["status"]["message"] == "nöt ällowed ✗"
