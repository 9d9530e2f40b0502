"""The test control plane's certificates, made fresh for every test session.

kube-apiserver serves TLS only and identifies its clients by certificate, as a real cluster
does: a certificate signed by its client CA whose common name is the user name and whose
organizations are the groups. This module issues the same set envtest issues — one CA, a
serving certificate for 127.0.0.1, a key for signing service-account tokens, and client
certificates for the admin user, the controller manager and any narrower test user — so the
tests see real authentication and RBAC decisions, not a bypass.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=1)
"""Long enough for any test session; certificates never outlive the temporary directory."""

SUPERUSER_GROUP = "system:masters"
"""The group kube-apiserver lets do anything, bypassing RBAC (as envtest's admin user)."""


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate with its private key, both serialisable as PEM."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    return x509.Name(attributes)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def new_key() -> ec.EllipticCurvePrivateKey:
    """A P-256 key: accepted everywhere in Kubernetes and far quicker to make than RSA."""
    return ec.generate_private_key(ec.SECP256R1())


def new_certificate_authority(common_name: str = "rayces-test-ca") -> IssuedCertificate:
    """A self-signed CA that signs both the serving and the client certificates."""
    key = new_key()
    name = _name(common_name)
    certificate = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return IssuedCertificate(certificate, key)


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def issue_serving_certificate(
    authority: IssuedCertificate, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> IssuedCertificate:
    """A TLS server certificate for kube-apiserver, valid for the given IPs and DNS names."""
    key = new_key()
    alternative_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alternative_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alternative_names.append(x509.DNSName(host))
    certificate = (
        _builder(_name("kube-apiserver"), authority.certificate.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    return IssuedCertificate(certificate, key)


def issue_client_certificate(
    authority: IssuedCertificate, user: str, groups: tuple[str, ...] = ()
) -> IssuedCertificate:
    """A client certificate that kube-apiserver maps to `user` in `groups`."""
    key = new_key()
    certificate = (
        _builder(_name(user, groups), authority.certificate.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    return IssuedCertificate(certificate, key)


def new_service_account_signing_key() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of the RSA key that signs service-account tokens.

    RSA because RS256 is the one algorithm every token consumer accepts.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public
