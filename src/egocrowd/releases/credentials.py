"""Content Credentials (C2PA) on released video (#13 part 3): each file a buyer receives says, signed,
that it was captured by a person, de-identified by egocrowd with which detectors, what its worker's
consent allows for AI training and data mining, and which release published it.

- A **local signing authority** (:func:`init_authority`, ``egocrowd c2pa init``): a private root CA
  and one signing certificate it issues, made with ``cryptography`` and kept in
  ``content_credentials_dir``. C2PA validators refuse self-signed signing certificates, so the chain
  is a root plus a leaf with the extensions the C2PA trust model asks for (digitalSignature, an
  email-protection EKU, subject and authority key identifiers). The root certificate is published at
  ``GET /api/v1/content-credentials/ca.pem``; whoever trusts it sees "Trusted", anyone else "Valid".
- :func:`manifest_for` builds the manifest of a file carrying one clip (or several, joined): the actions (``c2pa.created`` from a digital capture,
  ``c2pa.edited`` for the de-identification with its detectors and versions, ``c2pa.published`` for the
  release), a ``cawg.training-mining`` assertion from the consent's scopes and the licence, and an
  ``org.egocrowd.release`` assertion naming the release and the clip's hashes.
- :func:`sign_video` embeds it with ``c2pa-python`` (offline: no timestamp authority) and
  :func:`read_credentials` reads a file back and validates it: a modified file is ``Invalid``.

No authority, no signed release: a build without one fails with ``c2pa.no_authority`` (503) rather
than publishing unsigned video. The embedded setup (SQLite, one host) makes its authority on first
use, like its other keys. ``c2pa`` and ``cryptography`` are imported inside the functions that need
them, so the web server and the worker start without loading them.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import io
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from egocrowd import __version__
from egocrowd.blobs import sha256_file
from egocrowd.errors import Conflict, EgocrowdError
from egocrowd.releases.exporting import ReleaseItem
from egocrowd.settings import Settings

CA_FILE, CHAIN_FILE, KEY_FILE = "ca.pem", "signer-chain.pem", "signer-key.pem"
#: the recording itself: a person filmed it with a camera (IPTC digital source types)
DIGITAL_CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
#: a file joined from several captures (LeRobot's chunks)
COMPOSITE_CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeCapture"
MIME = "video/mp4"


class NoAuthority(EgocrowdError):
    """No signing authority where the settings say: nothing is released unsigned."""

    status = 503
    default_code = "c2pa.no_authority"


class SigningFailed(EgocrowdError):
    status = 500
    default_code = "c2pa.signing_failed"


@dataclass(frozen=True)
class Authority:
    """The files of a local signing authority: the root certificate, the signing chain (leaf first)
    and the signing key (PKCS#8 PEM, mode 0600)."""

    ca_pem: bytes
    chain_pem: bytes
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        """sha256 of the root certificate (DER), hex: what a buyer compares before trusting it."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        return x509.load_pem_x509_certificate(self.ca_pem).fingerprint(hashes.SHA256()).hex()


def authority_dir(settings: Settings) -> Path:
    return settings.content_credentials_dir or settings.data_dir / "content_credentials"


def init_authority(directory: Path, *, organization: str = "egocrowd", years: int = 10) -> Authority:
    """Make a root CA and a signing certificate under ``directory``; refuses to replace existing
    ones (``c2pa.authority_exists``): files signed with them would no longer chain to a known root."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if (directory / KEY_FILE).exists():
        raise Conflict(
            f"A signing authority already exists in {directory}; files it signed need it. Move it away first.",
            code="c2pa.authority_exists",
        )
    now = datetime.now(UTC)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            ]
        )

    def usage(*, sign: bool, certs: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=certs,
            crl_sign=certs,
            encipher_only=False,
            decipher_only=False,
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name(f"{organization} content credentials root"))
        .issuer_name(name(f"{organization} content credentials root"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(sign=False, certs=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name(f"{organization} releases"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(sign=True, certs=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    authority = Authority(
        ca_pem=ca.public_bytes(pem),
        chain_pem=leaf.public_bytes(pem) + ca.public_bytes(pem),
        key_pem=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CA_FILE).write_bytes(authority.ca_pem)
    (directory / CHAIN_FILE).write_bytes(authority.chain_pem)
    # the key last, created 0600 and exclusively: its presence is what "exists" means above
    fd = os.open(directory / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(authority.key_pem)
    # The root CA's own key is not kept: nothing else is ever issued, so nothing can be mis-issued.
    return authority


def load_authority(directory: Path) -> Authority:
    try:
        return Authority(
            ca_pem=(directory / CA_FILE).read_bytes(),
            chain_pem=(directory / CHAIN_FILE).read_bytes(),
            key_pem=(directory / KEY_FILE).read_bytes(),
        )
    except FileNotFoundError:
        raise NoAuthority(
            f"No content-credentials signing authority in {directory}: run `egocrowd c2pa init` "
            "(releases are never published unsigned).",
            directory=str(directory),
        ) from None


def authority(settings: Settings) -> Authority:
    """The authority the settings name; the embedded setup makes its own on first use."""
    directory = authority_dir(settings)
    if settings.is_embedded and not (directory / KEY_FILE).exists():
        try:
            return init_authority(directory)
        except Conflict:  # another process made it a moment ago
            pass
    return load_authority(directory)


def require_authority(settings: Settings) -> None:
    """At a worker's start: raise ``c2pa.no_authority`` now when release builds will need an
    authority that is not there, rather than failing every build it starts (the embedded setup
    makes its own on first use)."""
    if not settings.is_embedded:
        load_authority(authority_dir(settings))


# ---------------------------------------------------------------- the manifest


def training_mining(consent_scopes: Sequence[str], licence_uses: Sequence[str]) -> dict[str, Any]:
    """The ``cawg.training-mining`` entries: what the worker's consent and the release's licence allow.

    Every egocrowd recording consent covers training models on the clip (its required scope), so
    AI training and data mining are allowed when the licence includes training; generating new
    media from it is allowed only when the licence says so; commercial use without the worker's
    ``commercial_use`` scope is a constraint, spelled out."""
    uses = set(licence_uses)
    constraint = None if "commercial_use" in consent_scopes else "non-commercial use only (the worker's consent)"

    def entry(allowed: bool) -> dict[str, Any]:
        if not allowed:
            return {"use": "notAllowed"}
        return {"use": "constrained", "constraint_info": constraint} if constraint else {"use": "allowed"}

    training = "training" in uses or not uses
    return {
        "entries": {
            "cawg.ai_training": entry(training),
            "cawg.data_mining": entry(training),
            "cawg.ai_inference": entry(training),
            "cawg.ai_generative_training": entry("generative_training" in uses),
        }
    }


def manifest_for(
    items: Sequence[ReleaseItem], *, title: str, release: Mapping[str, Any], licence: Mapping[str, Any]
) -> dict[str, Any]:
    """The C2PA manifest of a released video carrying ``items``: one clip's own copy (a digital
    capture, de-identified), or a file an exporter made from several (LeRobot's concatenated chunks:
    a composite of captures, resampled and joined). See the module doc."""
    if not items:
        raise ValueError("a released video carries at least one clip")
    one = len(items) == 1
    first = items[0]
    versions = sorted({str(i.deid.get("stage_version", "")) for i in items})
    detectors = first.deid.get("detectors") or (first.deid.get("params") or {}).get("detection") or {}
    actions: list[dict[str, Any]] = [
        {
            "action": "c2pa.created",
            "digitalSourceType": DIGITAL_CAPTURE if one else COMPOSITE_CAPTURE,
            "when": min(i.recorded_at for i in items).astimezone(UTC).isoformat(),
            "description": "Recorded by a consenting worker with a head-mounted phone"
            if one
            else f"Joined from {len(items)} clips, each recorded by a consenting worker",
        },
        {
            "action": "c2pa.edited",
            "description": "De-identified: other people's faces (and, by campaign setting, readable text and "
            "speech) hidden" + ("" if one else "; resampled to a constant frame rate and joined"),
            "softwareAgent": {"name": "egocrowd de-identification", "version": ", ".join(versions)},
            "parameters": {"detectors": json.dumps(detectors, sort_keys=True, default=str)},
        },
        {
            "action": "c2pa.published",
            "when": _iso(release.get("created_at")),
            "description": f"Released in {release.get('name')} v{release.get('version')}",
        },
    ]
    # the most restrictive consent decides for a file that carries several clips
    scopes = set.intersection(*(set(i.consent.get("scopes", ())) for i in items))
    clips = [
        {
            "clip_sha256": i.clip_sha256,
            "deidentified_sha256": i.media_sha256,
            "consent_version": i.consent.get("version"),
            "consent_document_sha256": i.consent.get("sha256"),
        }
        for i in items
    ]
    return {
        "claim_generator_info": [{"name": "egocrowd", "version": __version__}],
        "title": title,
        "format": MIME,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": actions}},
            {"label": "cawg.training-mining", "data": training_mining(sorted(scopes), licence.get("uses", []))},
            {
                "label": "org.egocrowd.release",
                "data": {
                    "release_id": release.get("id"),
                    "name": release.get("name"),
                    "version": release.get("version"),
                    "organization": release.get("organization"),
                    "licence": licence.get("name"),
                    **(clips[0] if one else {"clips": clips}),
                },
            },
        ],
    }


def _iso(value: Any) -> str | None:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


# ---------------------------------------------------------------- signing and reading


#: videos up to this size are signed in memory when the direct path below is not available: one
#: read, one write, hashed from memory (the public API reads and writes through Python callbacks in
#: small pieces, slow on a file)
SIGN_IN_MEMORY_BYTES = 256 * 1024 * 1024


class _FdStream:
    """A native c2pa stream over a file descriptor whose read, seek and write callbacks are libc's
    own ``read``, ``lseek`` and ``write``: the descriptor is the stream's opaque context pointer
    (what the C API's own file example passes), so the library reads and writes the file without
    calling back into Python and without the GIL. ``_stream`` is what ``Builder._sign_internal``
    takes from c2pa-python's own ``Stream``."""

    def __init__(self, native: Any, callbacks: tuple[Any, ...], fd: int):
        self._native = native
        context = ctypes.cast(ctypes.c_void_p(fd), ctypes.POINTER(native.StreamContext))
        self._stream = native._lib.c2pa_create_stream(context, *callbacks)
        if not self._stream:
            raise OSError("c2pa could not make a stream over the file")

    def close(self) -> None:
        if self._stream:
            self._native._lib.c2pa_release_stream(self._stream)
            self._stream = None


@functools.cache
def _direct_signing() -> tuple[Any, tuple[Any, ...]] | None:
    """c2pa-python's native module and the libc callbacks, when signing straight from and to file
    descriptors works here (POSIX, and the c2pa-python internals it needs: tested with 0.38.1);
    None otherwise (then the public stream API is used)."""
    if os.name != "posix" or ctypes.sizeof(ctypes.c_void_p) != 8:  # lseek's off_t is the callbacks' ssize_t
        return None
    try:
        import c2pa.c2pa as native

        if not callable(getattr(native.Builder, "_sign_internal", None)):
            return None
        for name in ("c2pa_create_stream", "c2pa_release_stream"):
            getattr(native._lib, name)  # present, or AttributeError
        libc = ctypes.CDLL(None, use_errno=True)

        def address(f: Any) -> int | None:
            return ctypes.cast(f, ctypes.c_void_p).value

        return native, (
            native.ReadCallback(address(libc.read)),
            native.SeekCallback(address(libc.lseek)),
            native.WriteCallback(address(libc.write)),
            native.FlushCallback(_flush_nothing),  # write(2) keeps nothing back to flush
        )
    except (ImportError, AttributeError, OSError, TypeError):
        return None


def _flush_nothing(context: Any) -> int:
    return 0


def _sign_direct(direct: tuple[Any, tuple[Any, ...]], src: Path, dst: Path, manifest: Any, signer: Any) -> None:
    import c2pa

    native, callbacks = direct
    builder = c2pa.Builder(dict(manifest))
    with open(src, "rb", buffering=0) as s, open(dst, "w+b", buffering=0) as d:
        source = _FdStream(native, callbacks, s.fileno())
        try:
            dest = _FdStream(native, callbacks, d.fileno())
            try:
                builder._sign_internal(MIME, source, dest, signer=signer)
            finally:
                dest.close()
        finally:
            source.close()


@contextmanager
def signer_of(authority: Authority) -> Iterator[Any]:
    """One signer for many files (making one parses the key and chain each time)."""
    import c2pa

    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(alg=b"es256", sign_cert=authority.chain_pem, private_key=authority.key_pem, ta_url=None)
    )
    try:
        yield signer
    finally:
        signer.close()


@contextmanager
def signers_of(authority: Authority) -> Iterator[Callable[[], Any]]:
    """A signer for each thread that asks (one is not shared between threads; the library signs
    without holding the GIL, so threads sign several files at once), all closed at the end."""
    local = threading.local()
    lock = threading.Lock()  # ExitStack is not thread-safe
    with ExitStack() as stack:

        def signer() -> Any:
            if getattr(local, "signer", None) is None:
                with lock:
                    local.signer = stack.enter_context(signer_of(authority))
            return local.signer

        yield signer


def sign_video(
    src: Path,
    dst: Path,
    manifest: Mapping[str, Any],
    authority: Authority,
    *,
    signer: Any = None,
    direct: bool | None = None,
) -> tuple[str, int]:
    """Write ``src`` with ``manifest`` embedded and signed to ``dst`` (offline: no timestamp server);
    returns the signed file's sha256 and size. ``signer``: one from :func:`signer_of`, reused.

    ``direct`` (default: wherever it works, see :func:`_direct_signing`): the library reads ``src``
    and writes ``dst`` through libc on their descriptors, with no Python in between and without
    the GIL, so threads sign in parallel; the signed file is then hashed from the page cache.
    Otherwise the public stream API: in memory up to :data:`SIGN_IN_MEMORY_BYTES`, else on files."""
    import c2pa

    if signer is None:
        with signer_of(authority) as own:
            return sign_video(src, dst, manifest, authority, signer=own, direct=direct)
    way = _direct_signing() if direct is not False else None
    if direct and way is None:
        raise RuntimeError("direct signing is not available with this c2pa-python")
    try:
        if way is not None:
            _sign_direct(way, src, dst, manifest, signer)
        elif os.stat(src).st_size <= SIGN_IN_MEMORY_BYTES:
            with open(src, "rb") as s:
                source = io.BytesIO(s.read())
            signed = io.BytesIO()
            c2pa.Builder(dict(manifest)).sign(signer, MIME, source, signed)
            data = signed.getbuffer()
            with open(dst, "wb") as d:
                d.write(data)
            return hashlib.sha256(data).hexdigest(), len(data)
        else:
            with open(src, "rb") as s, open(dst, "w+b") as d:
                c2pa.Builder(dict(manifest)).sign(signer, MIME, s, d)
    except c2pa.C2paError as exc:
        dst.unlink(missing_ok=True)
        raise SigningFailed(f"Could not sign {src.name}: {exc}", file=src.name) from exc
    return sha256_file(dst)


@dataclass(frozen=True)
class Verdict:
    """What a validator says of a file: ``Trusted`` (valid and chained to a trusted root), ``Valid``
    (intact, signer not trusted here), ``Invalid`` (modified or broken), or ``None`` (no manifest)."""

    state: str | None
    manifest: Mapping[str, Any]
    failures: list[dict[str, Any]]

    def assertion(self, label: str) -> Mapping[str, Any] | None:
        for a in self.manifest.get("assertions", []):
            if a.get("label") == label or a.get("label", "").startswith(label + "."):
                return a.get("data")
        return None


def read_credentials(path: Path, *, trust_pem: bytes | None = None) -> Verdict:
    """Read and validate the file's active manifest, trusting ``trust_pem`` (a root certificate)."""
    import c2pa

    config: dict[str, Any] = {"verify": {"verify_trust": trust_pem is not None}}
    if trust_pem is not None:
        config["trust"] = {"trust_anchors": trust_pem.decode()}
    try:
        with open(path, "rb") as f:
            reader = c2pa.Reader(MIME, f, context=c2pa.Context.from_dict(config))
            store = json.loads(reader.json())
            state = reader.get_validation_state()
            results = reader.get_validation_results() or {}
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in str(exc) or "JumbfNotFound" in str(exc):
            return Verdict(None, {}, [])
        return Verdict("Invalid", {}, [{"code": "c2pa.unreadable", "explanation": str(exc)}])
    manifest = store.get("manifests", {}).get(store.get("active_manifest"), {})
    failures = list((results.get("activeManifest") or {}).get("failure", []))
    return Verdict(state, manifest, failures)


__all__ = [
    "Authority",
    "NoAuthority",
    "SigningFailed",
    "Verdict",
    "authority",
    "authority_dir",
    "init_authority",
    "load_authority",
    "manifest_for",
    "read_credentials",
    "sign_video",
    "signer_of",
    "training_mining",
]
