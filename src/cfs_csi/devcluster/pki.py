"""Certificates for a loopback control plane: one CA, the API server's serving certificate, an admin client
certificate (group ``system:masters``), a controller-manager client certificate, the API server's client
certificate for kubelets, and the service-account key; and, per node (:func:`issue_node`), the kubelet's client
certificate (``system:node:<name>`` in ``system:nodes``, what the Node authorizer expects) and serving certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    controller_manager_cert: Path
    controller_manager_key: Path
    service_account_key: Path
    service_account_pub: Path
    kubelet_client_cert: Path  # the API server's identity towards kubelets (logs, exec)
    kubelet_client_key: Path


@dataclass(frozen=True)
class NodeCerts:
    client_cert: Path
    client_key: Path
    serving_cert: Path
    serving_key: Path


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _write_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _certificate(
    subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
    *, ca: bool = False, server: bool = False, client: bool = False, server_names: tuple[str, ...] = (),
) -> x509.Certificate:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server and server_names:
        node_names: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
        node_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        builder = builder.add_extension(x509.SubjectAlternativeName(node_names), critical=False)
    elif server:
        names: list[x509.GeneralName] = [
            x509.DNSName("localhost"), x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]  # fmt: skip
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    usages = [u for u, wanted in ((ExtendedKeyUsageOID.SERVER_AUTH, server), (ExtendedKeyUsageOID.CLIENT_AUTH, client))
              if wanted]  # fmt: skip
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )  # fmt: skip
    return builder.sign(issuer_key, hashes.SHA256())


def create_pki(directory: Path) -> Pki:
    """Write every file the control plane needs into ``directory`` (valid for a week)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("cfs-csi-dev-cluster-ca")
    ca = _certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    pki = Pki(
        *(directory / f for f in ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key",
                                  "kcm.crt", "kcm.key", "sa.key", "sa.pub", "apiserver-kubelet-client.crt",
                                  "apiserver-kubelet-client.key"))
    )  # fmt: skip
    pki.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(ca_key, pki.ca_key)
    issued = (
        (pki.serving_cert, pki.serving_key, _name("kube-apiserver"), {"server": True}),
        (pki.admin_cert, pki.admin_key, _name("cfs-csi-admin", "system:masters"), {"client": True}),
        (pki.controller_manager_cert, pki.controller_manager_key,
         _name("system:kube-controller-manager", "system:masters"),  # a dev cluster: every controller may act
         {"client": True}),
        (pki.kubelet_client_cert, pki.kubelet_client_key, _name("kube-apiserver-kubelet-client"), {"client": True}),
    )  # fmt: skip
    for cert_path, key_path, subject, usage in issued:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(subject, key, ca_name, ca_key, server=usage.get("server", False),
                            client=usage.get("client", False))  # fmt: skip
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(sa_key, pki.service_account_key)
    pki.service_account_pub.write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return pki


def issue_node(pki: Pki, directory: Path, node_name: str) -> NodeCerts:
    """The kubelet's certificates for node ``node_name``, signed by the control plane's CA, in ``directory``.

    The serving certificate names the node and 127.0.0.1 (the address the node reports), so the API server can
    verify the kubelet it connects to for logs and exec.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the dev cluster's CA key is not an EC key")
    certs = NodeCerts(*(directory / f for f in ("kubelet-client.crt", "kubelet-client.key", "kubelet.crt",
                                                 "kubelet.key")))  # fmt: skip
    client_key, serving_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    client = _certificate(_name(f"system:node:{node_name}", "system:nodes"), client_key, ca.subject, ca_key,
                          client=True)  # fmt: skip
    serving = _certificate(_name(f"system:node:{node_name}"), serving_key, ca.subject, ca_key, server=True,
                           server_names=(node_name, "localhost"))  # fmt: skip
    for cert, key, cert_path, key_path in ((client, client_key, certs.client_cert, certs.client_key),
                                           (serving, serving_key, certs.serving_cert, certs.serving_key)):  # fmt: skip
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
    return certs
