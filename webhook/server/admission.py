"""AdmissionReview in and out: the request models and the response constructors.

`admission.k8s.io/v1` and `v1beta1` share one shape; a review is answered in
the version it arrived in, echoing the request uid. Responses are built only
by `allowed`, `denied` and `patched`, which also keep warnings
within what the API server passes on to kubectl.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from webhook.telemetry import jsonout

V1: Final = "admission.k8s.io/v1"
V1BETA1: Final = "admission.k8s.io/v1beta1"

MAX_WARNING_CHARS = 256  # the API server truncates longer warnings
MAX_WARNINGS_BYTES = 4096  # ... and drops warnings past 4 KB in total
MAX_MESSAGE_CHARS = 12_000  # a denial longer than a screenful helps nobody
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class _Model(BaseModel):
    # Unknown fields are ignored: the API server adds fields over releases.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class GroupVersionKind(_Model):
    group: str = ""
    version: str = ""
    kind: str = ""


class GroupVersionResource(_Model):
    group: str = ""
    version: str = ""
    resource: str = ""


class UserInfo(_Model):
    username: str = ""
    uid: str = ""
    groups: list[str] = Field(default_factory=list)


class AdmissionRequest(_Model):
    uid: str = Field(min_length=1)
    kind: GroupVersionKind = Field(default_factory=GroupVersionKind)
    resource: GroupVersionResource = Field(default_factory=GroupVersionResource)
    sub_resource: str = Field(default="", alias="subResource")
    name: str = ""
    namespace: str = ""
    operation: str = ""
    user_info: UserInfo = Field(default_factory=UserInfo, alias="userInfo")
    # Kept as plain JSON: the engine reads objects through its own views, and
    # a typed model of every workload kind would cost more than it checks.
    object: Any = None
    old_object: Any = Field(default=None, alias="oldObject")
    # strict: the API server sends a JSON boolean; "yes" or 1 is not one
    dry_run: bool | None = Field(default=False, alias="dryRun", strict=True)
    options: Any = None


class AdmissionReview(_Model):
    api_version: Literal["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] = Field(
        alias="apiVersion"
    )
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


class BadReview(ValueError):
    """A body that is not a usable AdmissionReview; the message says why."""


def parse_review(body: bytes) -> AdmissionReview:
    """The review in a request body, or BadReview naming what is wrong.

    orjson reads the body and pydantic checks the envelope: pydantic's own
    JSON reader builds the Python objects of `object` and `oldObject` more
    slowly. orjson reads integers past 64 bits as floats; the API server
    sends objects it has decoded into Go's int64 fields, so a review never
    holds one.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadReview(f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadReview("an AdmissionReview must be a JSON object")
    try:
        return AdmissionReview.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise BadReview(f"invalid AdmissionReview: {problems}") from exc


# Status and AdmissionResponse are NamedTuples: one or two are made per
# admission, and a frozen dataclass is slower to make.
class Status(NamedTuple):
    code: int
    message: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "Failure",
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
        }


class AdmissionResponse(NamedTuple):
    uid: str
    allowed: bool
    status: Status | None = None
    patch: str | None = None  # base64 of a JSON Patch document
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uid": self.uid, "allowed": self.allowed}
        if self.status is not None:
            out["status"] = self.status.as_dict()
        if self.patch is not None:
            out["patchType"] = "JSONPatch"
            out["patch"] = self.patch
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out

    def encode(self, api_version: str) -> bytes:
        """The AdmissionReview carrying this response, in the version of the request."""
        review = {"apiVersion": api_version, "kind": "AdmissionReview", "response": self.as_dict()}
        return jsonout.dumps(review)


def _clean(text: str) -> str:
    # Warnings travel as HTTP headers: no control characters, no newlines.
    return _CONTROL.sub(" ", text).strip()


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bound_warnings(lines: Iterable[str]) -> tuple[str, ...]:
    """Each warning at most 256 characters, all of them within 4 KB.

    When they do not all fit, the last one says how many more there are, so a
    user knows to look at the Events or the logs for the rest.
    """
    items = [_truncate(_clean(line), MAX_WARNING_CHARS) for line in lines if line.strip()]
    out: list[str] = []
    used = 0
    for index, item in enumerate(items):
        size = len(item.encode())
        rest = len(items) - index - 1
        # keep room for the summary line unless this is the last warning
        reserve = 96 if rest else 0
        if used + size + reserve > MAX_WARNINGS_BYTES:
            out.append(
                f"... and {len(items) - index} more podgate warning(s); "
                "see the PolicyViolation events or the podgate logs"
            )
            break
        out.append(item)
        used += size
    return tuple(out)


def denial_message(subject: str, lines: Sequence[str], unevaluated: Sequence[str] = ()) -> str:
    """Every violation on its own line, so one `kubectl apply` tells the user
    everything; then each deny policy podgate could not evaluate, and why."""
    count, failed = len(lines), len(unevaluated)
    rules = f"{count} podgate polic{'y rule' if count == 1 else 'y rules'}"
    policies = f"{failed} polic{'y' if failed == 1 else 'ies'}"
    if not failed:
        head = f"{subject} violates {rules}:"
    elif not count:
        head = f"podgate could not check {subject} against {policies}, so it is refused:"
    else:
        head = f"{subject} violates {rules}, and podgate could not check it against {policies}:"
    body: list[str] = []
    size = len(head)
    everything = [*lines, *unevaluated]
    for index, line in enumerate(everything):
        entry = f"\n- {line}"
        if size + len(entry) > MAX_MESSAGE_CHARS:
            body.append(f"\n- ... and {len(everything) - index} more; see the podgate logs")
            break
        body.append(entry)
        size += len(entry)
    return head + "".join(body)


def allowed(uid: str, warnings: Iterable[str] = ()) -> AdmissionResponse:
    if not warnings:  # the common answer: nothing to bound
        return AdmissionResponse(uid, True)
    return AdmissionResponse(uid=uid, allowed=True, warnings=bound_warnings(warnings))


def denied(
    uid: str, message: str, warnings: Iterable[str] = (), code: int = 403
) -> AdmissionResponse:
    reason = "Forbidden" if code == 403 else "InternalError" if code >= 500 else "Invalid"
    return AdmissionResponse(
        uid=uid,
        allowed=False,
        status=Status(code=code, message=message, reason=reason),
        warnings=bound_warnings(warnings),
    )


def patched(
    uid: str, operations: Sequence[Mapping[str, Any]], warnings: Iterable[str] = ()
) -> AdmissionResponse:
    """Allowed with a JSON Patch; without operations it is a plain `allowed`.

    An empty patch is never sent: under `reinvocationPolicy: IfNeeded` the API
    server re-invokes the webhook only when something changed the object.
    """
    if not operations:
        return allowed(uid, warnings)
    document = jsonout.dumps(list(operations))
    return AdmissionResponse(
        uid=uid,
        allowed=True,
        patch=base64.b64encode(document).decode(),
        warnings=bound_warnings(warnings),
    )


def http_error(code: int, message: str) -> bytes:
    """The body of a 4xx answer to a request that is not a usable review (a metav1 Status)."""
    reasons = {400: "BadRequest", 413: "RequestEntityTooLarge", 415: "UnsupportedMediaType"}
    status = {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reasons.get(code, "BadRequest"),
        "message": message,
    }
    return jsonout.dumps(status)
