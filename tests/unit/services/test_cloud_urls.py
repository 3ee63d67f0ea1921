"""Where `register.cloud` points: the environment's admin URL, service URLs through its tunnel, and
the in-process tunnel's values, URL and pod environment.

Every URL is pinned to upstream 2.8.1's format (its own test vectors where it has them): an
environment taken over from upstream keeps its registrations, and Restate Cloud routes by them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services import errors
from services.builders import cloud
from services.builders import deployment as build
from services.settings import Settings

SETTINGS = Settings(cluster_dns="cluster.local", operator_namespace="restate-operator")


def environment(environment_id: str = "env_123abc", region: str = "us", key: str = "publickeyv1_abc") -> dict[str, Any]:
    return {
        "metadata": {"name": "my-env", "uid": "dc9c0c32-7873-46ab-9ecc-02ee110ff63e"},
        "spec": {
            "environmentId": environment_id,
            "region": region,
            "signingPublicKey": key,
            "authentication": {"secret": {"name": "cloud-token", "key": "token"}},
        },
    }


def rsd(**restate: Any) -> dict[str, Any]:
    return {
        "apiVersion": "restate.dev/v1beta1",
        "kind": "RestateDeployment",
        "metadata": {"name": "greeter", "namespace": "shop", "uid": "u1"},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"app": "greeter"}},
                "spec": {
                    "initContainers": [{"name": "sidecar", "image": "proxy:1", "restartPolicy": "Always"}],
                    "containers": [{"name": "app", "image": "greeter:1", "env": [{"name": "LOG", "value": "info"}]}],
                },
            },
            "restate": {"register": {"cloud": "my-env"}, **restate},
        },
    }


def test_admin_and_ingress_urls_drop_the_env_prefix() -> None:
    for environment_id in ("env_123abc", "123abc"):
        rce = environment(environment_id, region="eu")
        assert cloud.admin_url(rce) == "https://123abc.env.eu.restate.cloud:9070"
        assert cloud.ingress_url(rce) == "https://123abc.env.eu.restate.cloud:8080"


def test_register_cloud_uses_the_environments_admin_api_and_its_token_secret() -> None:
    endpoint = build.admin_endpoint(rsd(), SETTINGS, environment())
    assert endpoint.url == "https://123abc.env.us.restate.cloud:9070"
    assert endpoint.token == build.TokenSecret(
        "restate-operator", "cloud-token", "token", "RestateCloudEnvironment my-env"
    )
    with pytest.raises(errors.InvalidSpec, match="RestateCloudEnvironment my-env is needed"):
        build.admin_endpoint(rsd(), SETTINGS, None)  # targets.resolve reports a missing one first
    no_cloud = copy.deepcopy(rsd())
    no_cloud["spec"]["restate"]["register"] = {"url": "http://r:9070"}
    assert build.admin_endpoint(no_cloud, SETTINGS).token is None


def test_external_tunnel_rewrites_the_service_url_with_the_environments_uid() -> None:
    uid = "dc9c0c32-7873-46ab-9ecc-02ee110ff63e"
    url = build.service_url(rsd(), "5b8c7d", SETTINGS, environment())
    assert url == f"https://tunnel.us.restate.cloud:9080/123abc/{uid}/http/greeter-5b8c7d.shop.svc.cluster.local/9080/"
    with_path = build.service_url(rsd(servicePath="/api/restate"), "5b8c7d", SETTINGS, environment())
    assert with_path.endswith("/http/greeter-5b8c7d.shop.svc.cluster.local/9080/api/restate")
    assert (
        cloud.tunnel_url(environment(), "https://x.example:8443/p?q=1#f")
        == f"https://tunnel.us.restate.cloud:9080/123abc/{uid}/https/x.example/8443/p?q=1#f"
    )
    assert cloud.tunnel_url(environment(), "http://x.example/").endswith("/http/x.example/80/")


def test_in_process_tunnel_url_matches_upstreams_vectors() -> None:
    tunnel = cloud.InProcessTunnel.of(environment())
    base = "https://tunnel.us.restate.cloud:9080/123abc/greeter-5b8c7d/http/in-process/9080/"
    assert tunnel.url("greeter-5b8c7d", None) == base
    assert cloud.InProcessTunnel.of(environment("123abc")).url("greeter-5b8c7d", None) == base
    for path in ("/api/restate", "api/restate"):
        assert tunnel.url("greeter-5b8c7d", path) == base + "api/restate"
    byoc = cloud.InProcessTunnel.of(environment(region="inl4edhpbxasp9yuz1n0yvvkme.byoc"))
    assert byoc.url("greeter-5b8c7d", None) == (
        "https://tunnel.inl4edhpbxasp9yuz1n0yvvkme.byoc.restate.cloud:9080/123abc/greeter-5b8c7d/http/in-process/9080/"
    )


@pytest.mark.parametrize(
    "path", ["http://elsewhere.example", "../..", "../../../otherenv/othertunnel/http/in-process/9080/"]
)
def test_a_service_path_may_not_escape_the_tunnel_url(path: str) -> None:
    with pytest.raises(errors.InvalidSpec, match="escapes the tunnel URL") as raised:
        cloud.InProcessTunnel.of(environment()).url("greeter-5b8c7d", path)
    assert raised.value.reason == "InvalidRestateConfig"


def test_in_process_values_are_normalised() -> None:
    for environment_id in ("env_123abc", "123abc"):
        assert cloud.InProcessTunnel.of(environment(environment_id)).environment_id == "env_123abc"


@pytest.mark.parametrize(
    ("environment_id", "region", "key"),
    [
        ("", "us", "publickeyv1_abc"),
        ("env_", "us", "publickeyv1_abc"),
        ("env_a b", "us", "publickeyv1_abc"),
        ("env_123abc", "", "publickeyv1_abc"),
        ("env_123abc", "US", "publickeyv1_abc"),
        ("env_123abc", "us/extra", "publickeyv1_abc"),
        ("env_123abc", ".us", "publickeyv1_abc"),
        ("env_123abc", "us.", "publickeyv1_abc"),
        ("env_123abc", "us..eu", "publickeyv1_abc"),
        ("env_123abc", "us", "not-a-key"),
    ],
)
def test_in_process_refuses_values_the_sdks_tunnel_client_would_crash_on(
    environment_id: str, region: str, key: str
) -> None:
    with pytest.raises(errors.InvalidSpec, match="RestateCloudEnvironment my-env") as raised:
        cloud.InProcessTunnel.of(environment(environment_id, region, key))
    assert raised.value.reason == "InvalidRestateConfig"


def test_in_process_mode_injects_the_tunnel_environment_into_every_container() -> None:
    obj = rsd(tunnelMode="in-process")
    tunnel = build.in_process_tunnel(obj, environment())
    assert tunnel is not None
    hash_ = build.version_hash(obj, None, tunnel)
    rs = build.replica_set(obj, hash_, replicas=1, in_process=tunnel)
    name = f"greeter-{hash_}"
    assert rs["metadata"]["annotations"][build.TUNNEL_NAME_ANNOTATION] == name
    injected = [
        {"name": "RESTATE_INPROC_TUNNEL_NAME", "value": name},
        {"name": "RESTATE_INPROC_ENVIRONMENT_ID", "value": "env_123abc"},
        {"name": "RESTATE_INPROC_CLOUD_REGION", "value": "us"},
        {"name": "RESTATE_INPROC_SIGNING_PUBLIC_KEY", "value": "publickeyv1_abc"},
    ]
    pod = rs["spec"]["template"]["spec"]
    assert pod["containers"][0]["env"] == [{"name": "LOG", "value": "info"}, *injected]
    assert pod["initContainers"][0]["env"] == injected
    assert "env" not in obj["spec"]["template"]["spec"]["initContainers"][0]  # the resource is not touched
    # The template annotation is the user's template: the hash and a takeover compare against it.
    assert "RESTATE_INPROC" not in rs["metadata"]["annotations"][build.TEMPLATE_ANNOTATION]
    url = build.service_url(
        obj, hash_, SETTINGS, environment(), rs["metadata"]["annotations"][build.TUNNEL_NAME_ANNOTATION]
    )
    assert url == f"https://tunnel.us.restate.cloud:9080/123abc/{name}/http/in-process/9080/"


def test_in_process_identity_is_part_of_the_version_hash() -> None:
    obj = rsd(tunnelMode="in-process")
    external = build.version_hash(rsd())
    one = build.version_hash(obj, None, cloud.InProcessTunnel.of(environment()))
    other_region = build.version_hash(obj, None, cloud.InProcessTunnel.of(environment(region="eu")))
    other_key = build.version_hash(obj, None, cloud.InProcessTunnel.of(environment(key="publickeyv1_abd")))
    assert len({external, one, other_region, other_key}) == 4
    assert one == build.version_hash(obj, None, cloud.InProcessTunnel.of(environment("123abc")))  # normalised
    # Length prefixes keep distinct tuples apart even when their bytes concatenate alike.
    shifted = build.version_hash(obj, None, cloud.InProcessTunnel("env_123abc", "u", "spublickeyv1_abc"))
    assert shifted != one


def test_in_process_refuses_a_container_that_sets_the_tunnel_variables_itself() -> None:
    obj = rsd(tunnelMode="in-process")
    obj["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "RESTATE_INPROC_CLOUD_REGION", "value": "x"}
    )
    with pytest.raises(errors.InvalidSpec, match="container app declares it too") as raised:
        build.replica_set(obj, "h", replicas=1, in_process=cloud.InProcessTunnel.of(environment()))
    assert raised.value.reason == "InvalidRestateConfig"


def test_in_process_needs_register_cloud() -> None:
    obj = rsd(tunnelMode="in-process")
    with pytest.raises(errors.InvalidSpec, match=r"needs spec\.restate\.register\.cloud"):
        build.in_process_tunnel(obj, None)
    assert build.in_process_tunnel(rsd(tunnelMode="external"), environment()) is None


def test_knative_registers_its_route_through_the_tunnel_with_register_cloud() -> None:
    from services.reconcilers.knative_mode import registered_url
    from services.reconcilers.targets import Target

    route = "http://greeter-abc.shop.svc.cluster.local"
    uid = environment()["metadata"]["uid"]
    through = registered_url(route, Target(build.AdminEndpoint("https://a"), environment()))
    assert through == f"https://tunnel.us.restate.cloud:9080/123abc/{uid}/http/greeter-abc.shop.svc.cluster.local/80/"
    assert registered_url(route, Target(build.AdminEndpoint("http://r:9070"))) == route
