"""Croissant 1.1 metadata with the Responsible-AI (RAI 1.0) vocabulary, for every release
(docs/release-metadata.md).

The describer writes, in its folder (``croissant/`` in the release):

- ``metadata.json``: the JSON-LD. The dataset (name, description, licence, creator, citation,
  version, dates), the RAI properties (how, by whom, where and when the clips were collected; the
  annotation protocol and annotators per clip; personal and sensitive information; biases,
  limitations, intended and prohibited uses; the release's maintenance: versions, withdrawals), one
  ``FileObject`` per release file (a path relative to this file, its sha256 and size), ``FileSet``\\ s
  for what is inside tar shards, and two ``RecordSet``\\ s that ``mlcroissant`` loads:
- ``clips.csv``: one row per clip (its hashes, campaign, length, country, labels, agreement,
  annotators, consent scopes), record set ``clips``;
- ``spans.csv``: one row per consensus action span, record set ``spans`` (``clip_sha256`` refers to
  ``clips``).

Everything comes from the :class:`ReleaseSpec` and the exporters' files; nothing reads the database.
:func:`validate` checks a written file with MLCommons' own ``mlcroissant`` (a test dependency,
imported only when called) and the checksums of the files it lists.
"""

from __future__ import annotations

import csv
import hashlib
import json
import posixpath
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from egocrowd.i18n import N_
from egocrowd.releases.composition import composition
from egocrowd.releases.exporting import DESCRIBERS, FileEntry, Progress, ReleaseItem, ReleaseSpec

FORMAT_VERSION = 1
CROISSANT = "http://mlcommons.org/croissant/1.1"
RAI = "http://mlcommons.org/croissant/RAI/1.0"
METADATA = "metadata.json"
CLIPS = "clips.csv"
SPANS = "spans.csv"

#: the JSON-LD context of Croissant 1.1 (its spec's appendix, as mlcroissant 1.1 writes it, plus the
#: RAI and PROV prefixes). ``name`` and ``description`` may be plain strings or language maps.
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/",
    "prov": "http://www.w3.org/ns/prov#",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "description": {"@container": "@language"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "name": {"@container": "@language"},
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

#: file name ending → IANA media type (Croissant's encodingFormat); the Parquet and WebDataset
#: spellings are the ones mlcroissant knows
MEDIA_TYPES = {
    ".json": "application/json",
    ".jsonl": "application/jsonlines",
    ".parquet": "application/x-parquet",
    ".arrow": "application/vnd.apache.arrow.file",
    ".csv": "text/csv",
    ".mp4": "video/mp4",
    ".tar": "application/x-tar",
    ".md": "text/markdown",
    ".html": "text/html",
    ".txt": "text/plain",
}

#: the columns of clips.csv: name → (Croissant data type, description)
CLIP_COLUMNS: dict[str, tuple[str, str]] = {
    "clip_sha256": ("sc:Text", "sha256 of the worker's original upload (provenance; its bytes are not released)"),
    "media_sha256": ("sc:Text", "sha256 of the de-identified video released"),
    "campaign_id": ("sc:Integer", "the campaign the clip was recorded for"),
    "campaign": ("sc:Text", "the campaign's title"),
    "task": ("sc:Text", "what the worker was asked to do"),
    "worker": ("sc:Text", "pseudonym of the worker who recorded it (stable within this release series)"),
    "country": ("sc:Text", "ISO 3166-1 alpha-2 country of the worker's profile"),
    "recorded_at": ("sc:Date", "when the clip arrived (UTC)"),
    "duration_s": ("sc:Float", "length in seconds"),
    "width": ("sc:Integer", "frame width in pixels"),
    "height": ("sc:Integer", "frame height in pixels"),
    "fps": ("sc:Float", "average frame rate of the recording (phones record a variable rate)"),
    "labels": ("sc:Text", "the clip's consensus action labels, 'verb noun', separated by '|'"),
    "spans": ("sc:Integer", "number of consensus action spans"),
    "agreement_alpha": ("sc:Float", "Krippendorff's alpha between the clip's annotators"),
    "agreement_iou": ("sc:Float", "mean temporal IoU of matched spans between annotators"),
    "annotators": ("sc:Integer", "how many annotators labelled the clip"),
    "consent_version": ("sc:Text", "the consent document version the worker signed"),
    "consent_scopes": ("sc:Text", "the scopes the worker granted, separated by '|'"),
    "qc_status": ("sc:Text", "the automatic quality check's verdict"),
}

SPAN_COLUMNS: dict[str, tuple[str, str]] = {
    "clip_sha256": ("sc:Text", "the clip (clips/clip_sha256)"),
    "start_s": ("sc:Float", "start of the action, seconds from the clip's start"),
    "end_s": ("sc:Float", "end of the action, seconds from the clip's start"),
    "verb": ("sc:Text", "verb class of the closed taxonomy"),
    "noun": ("sc:Text", "noun class of the closed taxonomy"),
    "label": ("sc:Text", "'verb noun'"),
    "confidence": ("sc:Float", "the aggregation's confidence in the label (0 to 1)"),
}


@DESCRIBERS.register(
    "croissant", version=FORMAT_VERSION, description=N_("Croissant 1.1 metadata with the RAI vocabulary")
)
def describe(
    spec: ReleaseSpec,
    out: Path,
    *,
    options: Mapping[str, Any],
    files: Sequence[FileEntry],
    progress: Progress,
) -> Mapping[str, Sequence[int]]:
    """Write ``metadata.json``, ``clips.csv`` and ``spans.csv`` into ``out``; the two tables carry
    every clip. ``options``: ``url``, the release's public page (default: a ``urn:`` naming it)."""
    out.mkdir(parents=True, exist_ok=True)
    here = out.name  # this describer's folder in the release ("croissant")
    own = []
    for name, write in ((CLIPS, _write_clips), (SPANS, _write_spans)):
        path = out / name
        write(spec.items, path)
        own.append(FileEntry(f"{here}/{name}", path.stat().st_size, _sha256(path), "croissant"))
    document = metadata(spec, [*files, *own], here=here, url=options.get("url"))
    (out / METADATA).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    progress(len(spec.items))
    ids = [i.clip_id for i in spec.items]
    return {f"{here}/{CLIPS}": ids, f"{here}/{SPANS}": [i.clip_id for i in spec.items if i.spans]}


# --- the JSON-LD -------------------------------------------------------------------------------------


def metadata(spec: ReleaseSpec, files: Sequence[FileEntry], *, here: str = "croissant", url: str | None = None) -> dict:
    """The Croissant document for ``spec`` whose files are ``files`` (paths relative to the release
    root; the document itself lives in folder ``here``)."""
    comp = composition(spec)
    licence = spec.licence or {}
    published = spec.created_at.date().isoformat()
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": [CROISSANT, RAI],
        "name": spec.name,
        "alternateName": spec.title,
        "description": _description(spec, comp),
        "version": f"{spec.version}.0.0",
        "sdVersion": str(FORMAT_VERSION),
        "url": url or f"urn:egocrowd:release:{spec.release_id}",
        "license": _licence(licence),
        "usageInfo": [{"@type": "sc:DefinedTerm", "name": use, "termCode": use} for use in _uses(licence)],
        "creator": {"@type": "sc:Organization", "name": spec.organization},
        "publisher": {"@type": "sc:Organization", "name": spec.organization},
        "datePublished": spec.created_at.isoformat(),
        "dateCreated": published,
        "citeAs": _citation(spec),
        "keywords": [
            "egocentric video",
            "human demonstrations",
            "robot learning",
            "action segmentation",
            "crowdsourcing",
        ],
        "inLanguage": "en",
        "isAccessibleForFree": False,
        **_rai(spec, comp),
        "distribution": _distribution(files, here),
        "recordSet": [_record_set("clips", CLIPS, CLIP_COLUMNS, here, key="clip_sha256"), _spans_set(here)],
    }
    if spec.previous:
        doc["prov:wasRevisionOf"] = {
            "@id": f"urn:egocrowd:release:{spec.previous.get('id')}",
            "version": f"{spec.previous.get('version')}.0.0",
            "sha256": spec.previous.get("root_hash"),
        }
    return doc


def _description(spec: ReleaseSpec, comp: Mapping[str, Any]) -> str:
    lead = spec.description.strip() or spec.title
    countries = len([c for c in comp["countries"] if c["country"] != "unknown"])
    return (
        f"{lead}\n\n{comp['clips']} egocentric video clips ({comp['hours']:.2f} hours) recorded with "
        f"head- or chest-mounted phones by {comp['workers']} crowd workers in {countries} countries, "
        f"de-identified, checked automatically and labelled with action spans from a closed taxonomy. "
        f"Version {spec.version} of '{spec.name}', published by {spec.organization}."
    )


def _licence(licence: Mapping[str, Any]) -> dict[str, Any] | str:
    name = str(licence.get("name") or "proprietary")
    if str(licence.get("url") or "").startswith(("http://", "https://")):
        return str(licence["url"])
    work: dict[str, Any] = {"@type": "sc:CreativeWork", "name": name}
    if licence.get("terms"):
        work["description"] = str(licence["terms"])
    if licence.get("expires_at"):
        work["expires"] = str(licence["expires_at"])
    return work


def _uses(licence: Mapping[str, Any]) -> list[str]:
    return [str(u) for u in licence.get("uses") or ()]


#: uses a licence can grant → what it means, in words for the intended-use statement
USE_WORDS = {
    "training": "training and evaluating robot-learning and AI models",
    "commercial": "commercial use (in products or paid work)",
    "redistribution": "passing the data on to others",
    "research": "non-commercial research",
}


def _citation(spec: ReleaseSpec) -> str:
    key = "".join(ch if ch.isalnum() else "_" for ch in f"{spec.name}_v{spec.version}")
    return (
        f"@misc{{{key},\n  title = {{{_bib(spec.title)}}},\n  author = {{{{{_bib(spec.organization)}}}}},\n"
        f"  year = {{{spec.created_at.year}}},\n  version = {{{spec.version}}},\n"
        f"  note = {{Release {spec.release_id}, collected and published with egocrowd}}\n}}"
    )


def _bib(text: str) -> str:
    return text.replace("{", "(").replace("}", ")")


def _rai(spec: ReleaseSpec, comp: Mapping[str, Any]) -> dict[str, Any]:
    """The RAI 1.0 properties, each a plain statement built from the release's own figures."""
    countries = [c for c in comp["countries"] if c["country"] != "unknown"]
    country_list = ", ".join(f"{c['country']} ({c['clips']})" for c in countries) or "not recorded"
    first, last = comp["recorded"]["first"], comp["recorded"]["last"]
    dates = [d[:10] for d in (first, last) if d]
    campaigns = "; ".join(f"'{c['title']}' ({c['clips']} clips)" for c in comp["campaigns"])
    taxonomy = _taxonomy(spec)
    ann = comp["agreement"]
    per_clip = ann["annotators_per_clip"]
    k_setting = sorted({int(c["annotation"]["per_clip"]) for c in spec.campaigns if _has(c, "annotation", "per_clip")})
    gold = sorted({float(c["annotation"]["gold_rate"]) for c in spec.campaigns if _has(c, "annotation", "gold_rate")})
    labels = comp["labels"]
    scopes = comp["consent"]["scopes"]
    audio = scopes.get("audio_kept", 0)
    face = scopes.get("face_visible", 0)
    uses = _uses(spec.licence or {})
    deid = comp["deid"]
    tools = ", ".join(deid["tools"]) or "the platform's face and text detectors"
    withdrawn = list(spec.changes.get("withdrawn") or ())
    added = list(spec.changes.get("added") or ())
    gold_words = f" (gold rate {', '.join(f'{g:.0%}' for g in gold)})" if gold else ""
    top_country = countries[0] if countries else None
    top_label = next(iter(labels["labels"].items()), None)
    unlabelled = comp["clips"] - labels["clips_labelled"]
    no_agreement = comp["clips"] - ann["clips"]
    rai: dict[str, Any] = {
        "rai:dataCollection": (
            f"Crowd workers recorded themselves doing everyday chores with a phone worn on the head or chest, "
            f"following each campaign's instructions ({campaigns}). {comp['workers']} workers contributed "
            f"{comp['clips']} clips between {dates[0] if dates else 'unknown'} and "
            f"{dates[-1] if dates else 'unknown'}, from these countries (clips): {country_list}. Each worker "
            f"signed the campaign's consent before recording and was paid per accepted clip. Clips were "
            f"uploaded resumably, checked automatically (QC), de-identified, accepted by the requester or a "
            f"reviewer, then labelled."
        ),
        "rai:dataCollectionType": ["User-generated content data", "Physical data collection"],
        "rai:dataCollectionTimeFrame": dates,
        "rai:dataCollectionTimeframe": dates,  # the RAI vocabulary's own spelling (mlcroissant reads the other)
        "rai:dataCollectionRawData": (
            "The workers' original uploads are not released. Every clip is released only as its de-identified "
            "derivative; clips.csv gives the original upload's sha256 (clip_sha256) for provenance."
        ),
        "rai:dataCollectionMissingData": (
            f"{unlabelled} of {comp['clips']} clips have no consensus action spans; {no_agreement} have no "
            f"agreement figures; {sum(c['clips'] for c in comp['countries'] if c['country'] == 'unknown')} have "
            f"no country. Missing values are empty cells in clips.csv."
        ),
        "rai:dataImputationProtocol": "None: no value is imputed; what was not measured is left empty.",
        "rai:dataPreprocessingProtocol": [
            "Automatic quality checks on every upload (length, frame rate, brightness, blur, shake, hands "
            "in view, near-duplicates); only clips that passed them and were accepted are released. "
            f"Checks recorded: {', '.join(c['name'] for c in comp['qc']['checks']) or 'none'}.",
            f"De-identification before anyone but an administrator sees a clip: {tools}.",
            "Exports resample phone video (variable frame rate) to a constant rate where a format needs one "
            "(LeRobot), keeping each frame's original timestamp.",
        ],
        "rai:dataManipulationProtocol": (
            "Faces of bystanders (and the wearer's, unless the worker allowed it) are blurred or filled, "
            "legible text is blurred, and audio is removed unless the worker allowed keeping it. Nothing "
            "else in the picture is changed."
        ),
        "rai:dataAnnotationProtocol": [
            f"Closed taxonomy: each action span is one verb class and one noun class"
            f"{f' (verbs: {taxonomy[0]}; nouns: {taxonomy[1]})' if taxonomy[0] else ''}.",
            f"Each clip is labelled independently by "
            f"{_k_words(k_setting, per_clip)} annotators who never label their own recordings; gold clips "
            f"with known answers are mixed in unmarked"
            f"{gold_words} to score annotators.",
            "Aggregation: spans are matched across annotators by temporal IoU, boundaries are fused robustly "
            "(medians), labels are decided by Dawid-Skene over annotators' reliabilities; clips whose "
            "agreement falls below the campaign's minimum go to a human reviewer.",
        ],
        "rai:dataAnnotationPlatform": [
            "egocrowd, the platform that collected the clips: a web annotation tool on phones and desktops; "
            "annotators are crowd workers who qualified on gold clips."
        ],
        "rai:dataAnnotationAnalysis": [
            f"Krippendorff's alpha between annotators (median over {ann['alpha']['n']} clips): "
            f"{_num(ann['alpha']['median'])}; mean temporal IoU of matched spans (median): "
            f"{_num(ann['mean_iou']['median'])}. Per-clip values are in clips.csv (agreement_alpha, "
            f"agreement_iou)."
        ],
        "rai:annotationsPerItem": (
            f"{_num(per_clip['median'])} annotators per clip (median; from {_num(per_clip['min'])} to "
            f"{_num(per_clip['max'])}), {ann['annotators']} distinct pseudonymous annotators in all; "
            f"{labels['spans']} consensus spans over {labels['clips_labelled']} clips. Per-clip counts: clips.csv, "
            f"column annotators."
        ),
        "rai:annotatorDemographics": [
            "Not collected. Annotators are pseudonymous crowd workers; the platform records only their "
            "reliability on gold clips."
        ],
        "rai:machineAnnotationTools": [
            f"De-identification detectors: {tools}.",
            "Label aggregation: temporal-IoU matching and Dawid-Skene (crowd-kit).",
        ],
        "rai:personalSensitiveInformation": [
            "Faces of bystanders are removed by de-identification (blur or fill) before release; detection "
            "runs frame by frame and can miss a small, turned or briefly hidden face.",
            f"De-identification hid {deid['tracks'].get('face', 0)} face tracks and "
            f"{deid['tracks'].get('text', 0)} text regions in {deid['clips_redacted']} of {comp['clips']} clips "
            f"(faces: {_counts(deid['face_modes'])}; sound: {_counts(deid['audio'])}).",
            f"The wearer's own face is kept only where the worker granted the face_visible scope ({face} clips).",
            f"Audio is kept only where the worker granted the audio_kept scope ({audio} clips); otherwise it "
            "is removed.",
            "Hands, homes and objects of the workers are visible: that is what the data is for.",
            "Workers appear only as pseudonyms; their country (ISO 3166) is given per clip. No names, contact "
            "details or exact locations are released.",
            f"Consent: every clip's worker signed a consent document (versions: "
            f"{', '.join(comp['consent']['versions']) or 'unknown'}) with these scopes granted (clips): "
            f"{', '.join(f'{s} ({n})' for s, n in scopes.items()) or 'none beyond training'}. A worker may "
            "withdraw; see the maintenance plan.",
        ],
        "rai:dataBiases": [
            _share_statement("country", top_country["country"], top_country["clips"], comp["clips"])
            if top_country
            else "The workers' countries are not recorded.",
            f"Settings: {', '.join(f'{s} ({n})' for s, n in comp['settings'].items())}; a campaign is one chore "
            "in one kind of place, so settings follow the campaigns chosen.",
            "Workers chose to take part and own a phone that records video: homes, chores and tools reflect "
            "who signs up on a gig platform, not a population sample.",
            _share_statement("label", top_label[0], top_label[1], labels["spans"])
            if top_label
            else "No action labels.",
        ],
        "rai:dataLimitations": [
            "Egocentric phone video: one viewpoint, no depth, no robot actions or proprioception.",
            "Phones record at a variable frame rate; exports that need a constant rate resample it.",
            "De-identification can miss faces (see personal and sensitive information).",
            "Labels come from a closed taxonomy: actions outside it are not labelled.",
            f"{comp['clips']} clips ({comp['hours']:.2f} h) from {comp['workers']} workers: small groups of "
            "workers may dominate a setting or label.",
        ],
        "rai:dataUseCases": [
            f"Intended: {', '.join(USE_WORDS.get(u, u) for u in uses) or 'as the licence states'}, e.g. "
            "learning manipulation from human demonstrations, action recognition and segmentation.",
            "Prohibited: identifying or tracking any person seen or heard in the clips, biometric profiling, "
            "surveillance, any use the licence does not grant"
            f"{'' if 'commercial' in uses else ' (including commercial use)'}"
            f"{'' if 'redistribution' in uses else ', and passing the data on to others'}.",
        ],
        "rai:dataSocialImpact": (
            "Crowd workers are paid per accepted clip with a minimum hourly floor and can see who buys their "
            "data and for what. The data helps robots learn household tasks; people filmed without their "
            "consent are protected by de-identification, and workers can withdraw their clips from later "
            "releases."
        ),
        "rai:dataReleaseMaintenancePlan": (
            f"Releases are immutable and versioned: this is version {spec.version} of '{spec.name}'. Every file is "
            "listed with its sha256 in the release manifest, and the release's root hash is the sha256 of that "
            "manifest. "
            + (
                f"The previous version is {spec.previous.get('version')} (root hash "
                f"{spec.previous.get('root_hash')}); since then {len(added)} clips were added and "
                f"{len(withdrawn)} withdrawn"
                + (f" (original upload sha256: {', '.join(withdrawn)})" if withdrawn else "")
                + ". "
                if spec.previous
                else "This is the first version. "
            )
            + "When a worker withdraws consent, or a clip is removed for cause, it is left out of every later "
            "release and every buyer who downloaded a release containing it is notified with the affected "
            "files' hashes and must delete them."
        ),
    }
    return rai


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or "not recorded"


def _share_statement(what: str, name: str, n: int, total: int) -> str:
    share = n / total if total else 0.0
    return f"The most common {what} is {name}: {n} of {total} ({share:.0%})."


def _k_words(setting: list[int], per_clip: Mapping[str, Any]) -> str:
    if setting:
        return " or ".join(str(k) for k in setting)
    return _num(per_clip["median"]) if per_clip["n"] else "several"


def _has(campaign: Mapping[str, Any], part: str, key: str) -> bool:
    value = campaign.get(part)
    return isinstance(value, Mapping) and value.get(key) is not None


def _taxonomy(spec: ReleaseSpec) -> tuple[str, str]:
    verbs: list[str] = []
    nouns: list[str] = []
    for c in spec.campaigns:
        tax = c.get("taxonomy") or {}
        for term in tax.get("verbs") or ():
            name = term.get("name") if isinstance(term, Mapping) else term
            if name and str(name) not in verbs:
                verbs.append(str(name))
        for term in tax.get("nouns") or ():
            name = term.get("name") if isinstance(term, Mapping) else term
            if name and str(name) not in nouns:
                nouns.append(str(name))
    return ", ".join(verbs), ", ".join(nouns)


def _num(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:g}" if isinstance(value, float) else str(value)


# --- distribution and record sets --------------------------------------------------------------------


def _distribution(files: Sequence[FileEntry], here: str) -> list[dict[str, Any]]:
    """A FileObject per file (its path relative to this document), then a FileSet per kind of member
    of the tar shards (WebDataset: the mp4 and json of each clip)."""
    objects: list[dict[str, Any]] = []
    shards: list[str] = []
    for f in sorted(files, key=lambda f: f.path):
        suffix = posixpath.splitext(f.path)[1].lower()
        objects.append(
            {
                "@type": "cr:FileObject",
                "@id": f.path,
                "name": f.path,
                "description": f"written by the {f.format} exporter",
                "contentUrl": posixpath.relpath(f.path, here),
                "contentSize": f"{f.size} B",
                "encodingFormat": MEDIA_TYPES.get(suffix, "application/octet-stream"),
                "sha256": f.sha256,
            }
        )
        if suffix == ".tar":
            shards.append(f.path)
    sets = []
    if shards:
        for member, media_type in (("mp4", "video/mp4"), ("json", "application/json")):
            sets.append(
                {
                    "@type": "cr:FileSet",
                    "@id": f"tar-shards/{member}",
                    "name": f"tar-shards/{member}",
                    "description": f"the .{member} member of each clip inside the tar shards (WebDataset)",
                    "containedIn": [{"@id": s} for s in shards],
                    "encodingFormat": media_type,
                    "includes": f"*.{member}",
                }
            )
    return objects + sets


def _record_set(
    name: str, filename: str, columns: Mapping[str, tuple[str, str]], here: str, *, key: str | None = None
) -> dict[str, Any]:
    file_id = f"{here}/{filename}"
    record: dict[str, Any] = {
        "@type": "cr:RecordSet",
        "@id": name,
        "name": name,
        "field": [
            {
                "@type": "cr:Field",
                "@id": f"{name}/{column}",
                "name": column,
                "description": description,
                "dataType": data_type,
                "source": {"fileObject": {"@id": file_id}, "extract": {"column": column}},
            }
            for column, (data_type, description) in columns.items()
        ],
    }
    if key:
        record["key"] = {"@id": f"{name}/{key}"}
    return record


def _spans_set(here: str) -> dict[str, Any]:
    record = _record_set("spans", SPANS, SPAN_COLUMNS, here)
    record["description"] = "consensus action spans, one row each; clip_sha256 refers to clips"
    record["field"][0]["references"] = {"field": {"@id": "clips/clip_sha256"}}
    return record


# --- the tables --------------------------------------------------------------------------------------


def clip_row(item: ReleaseItem) -> dict[str, Any]:
    agreement = item.agreement or {}
    consent = item.consent or {}
    annotators = agreement.get("annotators") if isinstance(agreement.get("annotators"), int) else len(item.annotators)
    return {
        "clip_sha256": item.clip_sha256,
        "media_sha256": item.media_sha256,
        "campaign_id": item.campaign_id,
        "campaign": item.campaign_title,
        "task": item.task,
        "worker": item.worker,
        "country": item.country or "",
        "recorded_at": item.recorded_at.date().isoformat(),
        "duration_s": _cell(item.duration_s),
        "width": _cell(item.width),
        "height": _cell(item.height),
        "fps": _cell(item.fps),
        "labels": "|".join(dict.fromkeys(s.label for s in item.spans)),
        "spans": len(item.spans),
        "agreement_alpha": _cell(agreement.get("alpha")),
        "agreement_iou": _cell(agreement.get("mean_iou")),
        "annotators": annotators or 0,
        "consent_version": str(consent.get("version") or ""),
        "consent_scopes": "|".join(str(s) for s in consent.get("scopes") or ()),
        "qc_status": str((item.qc or {}).get("status") or ""),
    }


def _write_clips(items: Sequence[ReleaseItem], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(CLIP_COLUMNS))
        writer.writeheader()
        for item in items:
            writer.writerow(clip_row(item))


def _write_spans(items: Sequence[ReleaseItem], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(SPAN_COLUMNS))
        writer.writeheader()
        for item in items:
            for s in item.spans:
                writer.writerow(
                    {
                        "clip_sha256": item.clip_sha256,
                        "start_s": s.start_ms / 1000,
                        "end_s": s.end_ms / 1000,
                        "verb": s.verb,
                        "noun": s.noun,
                        "label": s.label,
                        "confidence": _cell(s.confidence),
                    }
                )


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- checking a written file -------------------------------------------------------------------------


def validate(path: str | Path) -> list[str]:
    """What is wrong with the Croissant file at ``path``; empty when nothing is.

    Checks, in order: every local ``FileObject`` exists beside it with the size and sha256 it
    declares, then MLCommons' ``mlcroissant`` reads the document (its errors, and its warnings
    prefixed ``warning:``). ``mlcroissant`` is a test dependency, imported here only: without it the
    answer says so (``mlcroissant is not installed ...``) after the checksum findings."""
    path = Path(path)
    problems = check_files(path)
    try:
        import mlcroissant as mlc  # noqa: PLC0415 - optional: a test dependency, heavy to import
    except ImportError:
        return [*problems, "mlcroissant is not installed: Croissant validation skipped (pip install mlcroissant)"]
    try:
        with warnings.catch_warnings():  # mlcroissant's rdflib use is deprecated there, not our problem
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = mlc.Dataset(jsonld=str(path))
    except mlc.ValidationError as exc:
        return [*problems, *(line for line in str(exc).splitlines() if line.strip())]
    issues = dataset.metadata.ctx.issues
    return [*problems, *(f"warning: {w}" for w in sorted(issues.warnings))]


def check_files(path: str | Path) -> list[str]:
    """Every local FileObject of the Croissant file at ``path`` against the bytes beside it."""
    path = Path(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    for obj in doc.get("distribution") or ():
        if obj.get("@type") != "cr:FileObject" or obj.get("containedIn"):
            continue
        url = str(obj.get("contentUrl") or "")
        if "://" in url or url.startswith("urn:"):
            continue
        target = path.parent / url
        if not target.is_file():
            problems.append(f"{obj.get('@id')}: {url} is missing")
            continue
        size = str(target.stat().st_size)
        if obj.get("contentSize") and str(obj["contentSize"]).split()[0] != size:
            problems.append(f"{obj.get('@id')}: {size} bytes, the metadata says {obj['contentSize']}")
        if obj.get("sha256") and _sha256(target) != obj["sha256"]:
            problems.append(f"{obj.get('@id')}: sha256 differs from the metadata's")
    return problems


__all__ = ["CONTEXT", "FORMAT_VERSION", "check_files", "clip_row", "describe", "metadata", "validate"]
