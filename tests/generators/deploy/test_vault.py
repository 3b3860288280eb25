"""A service reading Vault, as deployed: the pod has the address and, for the Kubernetes auth, the
service-account token where the auth reads it.

The Kubernetes rule modelled here: with `automountServiceAccountToken: false` (which Pilothouse
sets, and checkov's CKV_K8S_38 wants) the kubelet mounts no token at
/var/run/secrets/kubernetes.io/serviceaccount; a `projected` volume with a `serviceAccountToken`
source puts one at the volume's `path`, rotated by the kubelet
(https://kubernetes.io/docs/concepts/storage/projected-volumes/#serviceaccounttoken). Vault's
Kubernetes auth logs in with that file (`jwt_file`).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pilothouse.config import load_config
from tests.helpers import ROOT, one, rendered, run_cli, write_config

SERVICE = """
[service]
name = "vaulted"
app = "app:app"
[secrets]
sources = ["vault", "env"]
declare = [{{ secret = "api.key" }}]
[secrets.vault]
{vault}
[deploy]
image = "registry.example.com/vaulted"
{deploy}
"""


def _generate(tmp_path: Path, vault: str, deploy: str = "") -> tuple[int, str, Path]:
    tmp_path.mkdir(exist_ok=True)
    config = write_config(tmp_path, SERVICE.format(vault=vault, deploy=deploy))
    out = tmp_path / "deploy"
    result = run_cli("generate", "deploy", "-c", str(config), "--out", str(out))
    return result.returncode, result.stdout + result.stderr, out


def test_the_broker_pod_has_the_vault_address_and_a_projected_token_where_the_auth_reads_it(
    tmp_path: Path,
) -> None:
    """examples/broker: Kubernetes auth. The token file the auth reads (the config's `jwt_file`)
    is exactly the projected volume's mount directory plus its `path`."""
    config = load_config(ROOT / "examples" / "broker" / "pilothouse.toml")
    assert config.secrets.vault is not None
    jwt_file = PurePosixPath(config.secrets.vault.auth.jwt_file)  # type: ignore[union-attr]
    bundle = tmp_path / "deploy"
    result = run_cli("generate", "deploy", "-c", str(config.source), "--out", str(bundle))
    assert result.returncode == 0, result.stderr
    pod = one(rendered(bundle, "base"), "Rollout", "broker")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VAULT_ADDR"] == "https://vault.vault.svc:8200"
    mount = one([{"kind": "m", **m} for m in container["volumeMounts"] if m["name"] == "vault-token"], "m")
    volume = one([{"kind": "v", **v} for v in pod["volumes"] if v["name"] == "vault-token"], "v")
    (source,) = volume["projected"]["sources"]
    assert PurePosixPath(mount["mountPath"]) / source["serviceAccountToken"]["path"] == jwt_file
    assert mount["readOnly"] is True and source["serviceAccountToken"]["expirationSeconds"] >= 600


def test_a_custom_jwt_file_is_where_the_token_is_projected(tmp_path: Path) -> None:
    code, output, out = _generate(
        tmp_path,
        'address = "https://vault.example:8200"\n'
        'auth = { method = "kubernetes", role = "vaulted", jwt_file = "/var/run/vault/sa/jwt" }',
    )
    assert code == 0, output
    pod = one(rendered(out, "base"), "Deployment")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["vault-token"] == "/var/run/vault/sa"
    (token,) = [v for v in pod["volumes"] if v["name"] == "vault-token"]
    assert token["projected"]["sources"][0]["serviceAccountToken"]["path"] == "jwt"


def test_token_auth_gets_no_service_account_token(tmp_path: Path) -> None:
    code, output, out = _generate(tmp_path, 'address = "https://vault.example:8200"')
    assert code == 0, output
    pod = one(rendered(out, "base"), "Deployment")["spec"]["template"]["spec"]
    assert "vault-token" not in {v["name"] for v in pod["volumes"]}
    assert pod["automountServiceAccountToken"] is False


def test_no_vault_address_anywhere_is_refused_in_one_line(tmp_path: Path) -> None:
    code, output, out = _generate(tmp_path, 'auth = { method = "kubernetes", role = "vaulted" }')
    assert code == 2
    assert output.count("\n") == 1 and "secrets.vault.address: not set" in output, output
    assert "VAULT_ADDR" in output and "Traceback" not in output
    assert not out.exists()  # nothing half-written


def test_the_address_from_deploy_env_is_enough_an_environment_alone_is_not(tmp_path: Path) -> None:
    """compose and the systemd unit are written from `[deploy].env`: an address only in the
    environments' overlays would leave them without one."""
    auth = 'auth = { method = "kubernetes", role = "vaulted" }'
    assert _generate(tmp_path / "a", auth, 'env = { VAULT_ADDR = "https://vault.example:8200" }')[0] == 0
    assert _generate(tmp_path / "b", auth, 'env = { BAO_ADDR = "https://bao.example:8200" }')[0] == 0
    overlays_only = (
        '[deploy.environments.staging]\nenv = { VAULT_ADDR = "https://vault.staging:8200" }\n'
        '[deploy.environments.prod]\nenv = { VAULT_ADDR = "https://vault.prod:8200" }\n'
    )
    assert _generate(tmp_path / "c", auth, overlays_only)[0] == 2
