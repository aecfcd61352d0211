"""The one way to open uploaded media: ``open_media(path)``.

FFmpeg guesses a file's format from its content, and several of its demuxers open *other* files
named inside the one they read (concat scripts, HLS/DASH playlists, image sequences, ``subfile:``,
QuickTime data references). An upload that is a 99-byte playlist naming a neighbouring blob would
otherwise be "decoded" as that other worker's clip. So:

1. The container is chosen from the file's own magic bytes (``sniff_container``), never by FFmpeg's
   probing, and only from an allow-list: ISO-BMFF (MP4/MOV/3GP: what phones and Safari record) and
   Matroska/WebM (what Chrome and Firefox's MediaRecorder write on the capture page). Anything
   else is refused with a typed ``MediaError`` before FFmpeg reads a byte.
2. FFmpeg reads the bytes through a Python file object of ours, so it never sees a path to
   resolve; the demuxer is pinned (``format_whitelist``), no protocol is allowed
   (``protocol_whitelist``), QuickTime data references are off (``enable_drefs=0``), and every
   nested open FFmpeg attempts anyway goes to ``_refuse_nested``, which refuses it and marks the
   file as rejected (``video.unsupported_container``) even if the demuxer would carry on.

Writers (``av.open(path, "w")`` for files we make ourselves) do not go through here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import av

from egocrowd.errors import MediaError

#: Demuxer per allowed container family, by FFmpeg's full demuxer name.
ALLOWED_CONTAINERS = {"iso_bmff": "mov,mp4,m4a,3gp,3g2,mj2", "matroska": "matroska,webm"}
_FORMAT_WHITELIST = ",".join(ALLOWED_CONTAINERS.values())
_READ_BUFFER = 256 * 1024

_ISO_BMFF_FIRST_BOX = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}
# ISO-BMFF brands that mean a still picture (HEIF/AVIF), not a video.
_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis", b"avci"}
_EBML = b"\x1a\x45\xdf\xa3"

# Magic bytes of common things people upload by mistake: named, so the worker hears why.
_NOT_VIDEO_MAGIC = {
    b"PK\x03\x04": "a zip archive",
    b"PK\x05\x06": "an empty zip archive",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip archive",
    b"7z\xbc\xaf": "a 7z archive",
    b"Rar!": "a RAR archive",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"ID3": "an MP3 audio file",
    b"fLaC": "a FLAC audio file",
}
# Video containers we could read but do not accept (their demuxers are not on the allow-list).
_OTHER_CONTAINERS = {
    b"YUV4MPEG2": "raw YUV4MPEG video",
    b"FLV\x01": "Flash video",
    b"OggS": "an Ogg file",
    b"\x00\x00\x01\xba": "an MPEG program stream",
    b"\x30\x26\xb2\x75\x8e\x66\xcf\x11": "a Windows Media file",
}

# Text formats whose whole point is to name other files (HLS, ffconcat, DASH, SMIL, PLS), however
# much binary follows them.
_PLAYLIST_MAGIC = (b"#EXTM3U", b"ffconcat", b"<?xml", b"<MPD", b"<smil", b"[playlist]")


def sniff_container(head: bytes) -> str:
    """The demuxer for a file starting with ``head`` (at least 16 bytes when the file has them),
    or ``MediaError``: ``video.empty``, ``video.not_video`` (an image, audio, an archive, a
    document), ``video.unsupported_container`` (a playlist, a script, text, a video container we
    do not accept) or ``video.unreadable`` (bytes that are no known format)."""
    if not head:
        raise MediaError("the file is empty", code="video.empty")
    for magic, what in _NOT_VIDEO_MAGIC.items():
        if head.startswith(magic):
            raise MediaError(f"this is {what}, not a video", code="video.not_video")
    if head[4:8] in _ISO_BMFF_FIRST_BOX:
        if head[4:8] == b"ftyp" and head[8:12] in _IMAGE_BRANDS:
            raise MediaError("this is a still image (HEIF/AVIF), not a video", code="video.not_video")
        return ALLOWED_CONTAINERS["iso_bmff"]
    if head.startswith(_EBML):
        return ALLOWED_CONTAINERS["matroska"]
    if head.startswith(b"RIFF"):
        kind = head[8:12]
        if kind in (b"WEBP", b"WAVE"):
            what = "a WebP image" if kind == b"WEBP" else "a WAV audio file"
            raise MediaError(f"this is {what}, not a video", code="video.not_video")
        _unsupported("an AVI or other RIFF file")
    for magic, what in _OTHER_CONTAINERS.items():
        if head.startswith(magic):
            _unsupported(what)
    if head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(_PLAYLIST_MAGIC):
        _unsupported("a playlist or script that names other files")
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        _unsupported("an MPEG transport stream")
    if _looks_like_text(head):
        # Playlists (HLS, DASH, ffconcat), subtitles, scripts: text that could name other files.
        _unsupported("a text file (a playlist, a script or a document)")
    raise MediaError("the file is not in a video format we can read", code="video.unreadable")


def _unsupported(what: str) -> None:
    raise MediaError(
        f"this is {what}; upload the MP4, MOV or WebM file your phone or browser recorded",
        code="video.unsupported_container",
    )


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the sample is still text.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    text = text.lstrip("\ufeff")
    return bool(text) and all(c.isprintable() or c in "\r\n\t\f" for c in text)


class _BlobReader:
    """Read-only access to one stored file for FFmpeg: read, seek and tell; no name to resolve
    other files against, no file descriptor. The same open file was sniffed, so what FFmpeg
    reads is exactly the bytes we judged (no swap between the check and the read)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh

    def read(self, n: int = -1) -> bytes:
        return self._fh.read(n)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()


class _NestedOpens:
    """PyAV's ``io_open`` hook: every file FFmpeg tries to open from inside the upload is refused
    and remembered."""

    def __init__(self) -> None:
        self.attempted: list[str] = []

    def __call__(self, url: str, flags: int, options: dict[str, Any]) -> Any:
        self.attempted.append(url)
        raise PermissionError("egocrowd opens no file named inside an upload")


def _nested_refused(urls: list[str]) -> MediaError:
    return MediaError(
        "the file refers to other files (a playlist or a reference); only self-contained videos are accepted",
        code="video.unsupported_container",
        nested=len(urls),
    )


@contextmanager
def open_media(
    path: str | os.PathLike[str],
    *,
    probesize: int | None = None,
    analyzeduration_us: int | None = None,
    timeout_s: float | None = None,
    decoder_options: dict[str, str] | None = None,
) -> Iterator[Any]:
    """Open an uploaded file for reading (a PyAV ``InputContainer``), or raise ``MediaError``.

    ``decoder_options`` go to every stream's decoder while FFmpeg probes the streams (e.g.
    ``{"skip_frame": "nonkey"}`` for a caller that only remuxes: probing decodes no inter frames,
    ten times less work per file; the pixel format is then left unknown).
    FFmpeg errors while opening are ``video.unreadable``; the caller judges what it reads."""
    with _open_upload(path) as fh:
        demuxer = sniff_container(fh.read(512))
        fh.seek(0)
        nested = _NestedOpens()
        options = {
            "format_whitelist": _FORMAT_WHITELIST,
            "protocol_whitelist": "none",
            "enable_drefs": "0",
            "use_absolute_path": "0",
        }
        if probesize:
            options["probesize"] = str(probesize)
        if analyzeduration_us:
            options["analyzeduration"] = str(analyzeduration_us)
        try:
            container = av.open(
                _BlobReader(fh),
                format=demuxer,
                container_options=options,
                options=decoder_options or {},
                buffer_size=_READ_BUFFER,
                io_open=nested,
                timeout=timeout_s,
            )
        except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
            if nested.attempted:
                raise _nested_refused(nested.attempted) from exc
            raise MediaError(
                f"the file could not be opened as a video ({_short(exc)})", code="video.unreadable"
            ) from exc
        with container:
            if nested.attempted:
                raise _nested_refused(nested.attempted)
            yield container
            if nested.attempted:  # a demuxer that tried to open another file while reading
                raise _nested_refused(nested.attempted)


def _open_upload(path: str | os.PathLike[str]) -> BinaryIO:
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller's with-block closes it
    except OSError as exc:
        raise MediaError(f"cannot read the file: {exc.strerror}", code="video.unreadable") from exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:160]


__all__ = ["ALLOWED_CONTAINERS", "open_media", "sniff_container"]
