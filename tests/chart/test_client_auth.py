"""`webhook.clientAuth`: the chart runs `podgate serve --client-ca` with the
CA from a Secret, and the allowed client names; off unless a Secret is named."""

from __future__ import annotations

from typing import Any

from tests.chart.helm import container, render, template


def _webhook(sets: list[str]) -> tuple[list[str], dict[str, Any]]:
    spec = render(sets=sets).by_component("Deployment", "webhook")["spec"]["template"]["spec"]
    return container(spec)["args"], spec


def test_off_by_default() -> None:
    args, spec = _webhook([])
    assert "--client-ca" not in args
    assert all(v["name"] != "client-ca" for v in spec["volumes"])


def test_the_ca_comes_from_the_named_secret_with_the_allowed_names() -> None:
    args, spec = _webhook([
        "webhook.clientAuth.caSecret=apiserver-webhook-client-ca",
        "webhook.clientAuth.allowedNames={kube-apiserver-webhook-client,other}",
    ])  # fmt: skip
    joined = " ".join(args)
    assert "--client-ca /client-ca/ca.crt" in joined
    assert "--client-cn kube-apiserver-webhook-client --client-cn other" in joined
    volume = next(v for v in spec["volumes"] if v["name"] == "client-ca")
    assert volume["secret"]["secretName"] == "apiserver-webhook-client-ca"
    assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    mounts = container(spec)["volumeMounts"]
    assert {"name": "client-ca", "mountPath": "/client-ca", "readOnly": True} in mounts


def test_bad_values_are_refused_by_the_schema() -> None:
    for item in ("webhook.clientAuth.caSecret=Not_A_Name", "webhook.clientAuth.ca=x"):
        result = template(sets=[item])
        assert result.returncode != 0, item
        assert "clientAuth" in result.stderr
