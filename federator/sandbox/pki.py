"""The sandbox's certificates: one CA signs every serving and client certificate.

One CA for all three clusters keeps the kubeconfig simple; the clusters stay separate because
each has its own etcd. Files are created once and reused on later `up`s, so clients that
cached the CA keep working across restarts. ECDSA P-256 like envtest; the service-account
signing key is RSA because every Kubernetes component accepts it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)
FRONT_PROXY_CLIENT = "front-proxy-client"


@dataclass(frozen=True, slots=True)
class CertPair:
    """A certificate and its key on disk (PEM)."""

    cert: Path
    key: Path

    def exists(self) -> bool:
        return self.cert.exists() and self.key.exists()


@dataclass(frozen=True, slots=True)
class Pki:
    """The sandbox's certificate files under `.sandbox/pki/`."""

    directory: Path

    @property
    def ca(self) -> CertPair:
        return CertPair(self.directory / "ca.crt", self.directory / "ca.key")

    @property
    def serving(self) -> CertPair:
        """Serves every loopback server: apiservers, Kueue webhook, metrics and visibility."""
        return CertPair(self.directory / "serving.crt", self.directory / "serving.key")

    @property
    def admin(self) -> CertPair:
        return CertPair(self.directory / "admin.crt", self.directory / "admin.key")

    @property
    def front_proxy_client(self) -> CertPair:
        """The apiserver's identity towards aggregated APIs (request-header authentication)."""
        return CertPair(
            self.directory / "front-proxy-client.crt", self.directory / "front-proxy-client.key"
        )

    @property
    def service_account(self) -> CertPair:
        """`cert` holds the public key, `key` the private key that signs tokens."""
        return CertPair(self.directory / "sa.pub", self.directory / "sa.key")

    def ensure(self) -> None:
        """Create whatever is missing; never replace an existing file."""
        ca_cert, ca_key = self.ensure_serving()
        if not self.admin.exists():
            _write_leaf(self.admin, ca_cert, ca_key, "admin", ["system:masters"], server=False)
        if not self.front_proxy_client.exists():
            _write_leaf(
                self.front_proxy_client, ca_cert, ca_key, FRONT_PROXY_CLIENT, [], server=False
            )
        if not self.service_account.exists():
            _write_service_account_keys(self.service_account)

    def ensure_serving(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """The CA and the loopback serving certificate it signed (also what tests need for a
        server of their own behind a private CA); returns the CA for signing more."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.ca.exists():
            _write_ca(self.ca)
        ca_cert, ca_key = _load(self.ca)
        if not self.serving.exists():
            _write_leaf(self.serving, ca_cert, ca_key, "federator-sandbox", [], server=True)
        return ca_cert, ca_key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _write_ca(pair: CertPair) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "federator-sandbox-ca")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_private(pair.key, _key_pem(key))
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load(pair: CertPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{pair.key}: expected an EC private key")
    return cert, key


def _write_leaf(
    pair: CertPair,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    organizations: list[str],
    *,
    server: bool,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        names: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_private(pair.key, _key_pem(key))
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_service_account_keys(pair: CertPair) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(pair.key, _key_pem(key))
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pair.cert.write_bytes(public)
